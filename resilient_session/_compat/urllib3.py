"""What the package needs from urllib3 beyond its documented API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from urllib3._collections import HTTPHeaderDict
from urllib3.connectionpool import port_by_scheme
from urllib3.poolmanager import PoolManager
from urllib3.util import Timeout
from urllib3.util.retry import Retry

from .classes import with_mixin

__all__ = [
    "ConnectionHooks",
    "MethodRule",
    "header_pairs",
    "original_response",
    "pool_key_of",
    "pools_with",
    "replace_pool_classes",
    "retry_copy",
    "timeout_parts",
]


def timeout_parts(timeout: Timeout) -> tuple[Any, Any]:
    """The connect and read values a ``Timeout`` was given (``_connect``, ``_read``), unresolved.

    Stands in for the public ``connect_timeout`` and ``read_timeout``, which cannot be read here: they
    fold ``total`` in, and ``read_timeout`` raises before ``start_connect()``.
    """
    return timeout._connect, timeout._read


def header_pairs(headers: HTTPHeaderDict) -> dict[str, tuple[str, str]] | None:
    """``{name.lower(): (name, value)}`` of *headers* as ``CaseInsensitiveDict(headers)`` stores them: the
    name as first received, the values of a repeated header joined by ``", "``; None unless *headers* is
    a plain ``HTTPHeaderDict``.

    Stands in for iterating the dict (``__iter__`` and ``__getitem__`` are Python, twice per header):
    read from its ``_container`` (lower-cased name -> [name, value, value ...]).
    """
    if type(headers) is not HTTPHeaderDict:
        return None
    container: dict[str, list[str]] = headers._container  # type: ignore[assignment]
    return {lower: (values[0], ", ".join(values[1:])) for lower, values in container.items()}


def original_response(response: Any) -> Any:
    """The ``http.client.HTTPResponse`` a urllib3 response was read from (``_original_response``), if
    any: what ``requests.cookies.extract_cookies_to_jar`` reads cookies from, and returns early without."""
    return getattr(response, "_original_response", None)


def pool_key_of(
    manager: Any, host: str | None, port: int | None, scheme: str | None, pool_kwargs: dict[str, Any] | None
) -> tuple[Any, dict[str, Any]] | None:
    """The pool key and request context ``manager.connection_from_host(host, port, scheme, pool_kwargs)``
    builds (with ``_merge_pool_kwargs`` and the scheme's key function) before it looks the pool up with
    ``connection_from_pool_key``; None for anything but a plain ``PoolManager`` given a host, a known
    scheme and no ``strict``.

    Stands in for building both on every call: the pool key and context depend on the arguments and the
    manager's ``connection_pool_kw`` only, so a caller may keep them and ask ``connection_from_pool_key``
    (public) for the pool, handing it a copy of the context (urllib3 pops from it when it makes a pool).
    """
    if type(manager) is not PoolManager or not host:
        return None
    context = manager._merge_pool_kwargs(pool_kwargs)
    context["scheme"] = scheme or "http"
    if port is None:
        port = port_by_scheme.get(context["scheme"].lower(), 80)
    context["port"] = port
    context["host"] = host
    constructor = manager.key_fn_by_scheme.get(context["scheme"].lower())
    if constructor is None or "strict" in context:
        return None
    return constructor(context), context


def pools_with(manager: Any, mixin: type[Any]) -> None:
    """Make the pools *manager* (a ``PoolManager``) creates from now on have *mixin* first in their MRO.

    Stands in for a pool class argument urllib3 does not have: ``PoolManager`` picks the class per scheme
    from its ``pool_classes_by_scheme`` attribute (undocumented). SOCKS and other pool subclasses keep
    their own behaviour; a manager without the attribute is left alone, and one already done is not
    done twice.
    """
    classes = getattr(manager, "pool_classes_by_scheme", None)
    if classes is None or getattr(manager, "_resilient_pools", None) is classes:
        return
    mixed = {scheme: with_mixin(mixin, cls) for scheme, cls in classes.items()}
    manager.pool_classes_by_scheme = mixed
    manager._resilient_pools = mixed


def replace_pool_classes(manager: Any, choose: Callable[[type[Any]], type[Any]]) -> None:
    """Make *manager* (a urllib3 ``PoolManager``) create ``choose(cls)`` pools where it created ``cls``.

    Stands in for a pool class argument urllib3 does not have: ``PoolManager`` picks the class per scheme
    from its undocumented ``pool_classes_by_scheme``. A manager without one is left as it is.
    """
    classes = getattr(manager, "pool_classes_by_scheme", None)
    if classes is None:
        return
    chosen = {scheme: choose(cls) for scheme, cls in classes.items()}
    if chosen != classes:
        manager.pool_classes_by_scheme = chosen


class ConnectionHooks:
    """Connection-pool mixin: ``connection_lent(conn)`` runs before a request is sent on a connection,
    ``connection_returned(conn)`` when the connection goes back to the pool.

    Stands in for connection hooks urllib3 does not offer: it overrides the pool's private
    ``_make_request`` (one per attempt, with the connection in hand) and ``_put_conn``.
    """

    def connection_lent(self, conn: Any) -> None:
        """Called with the connection an attempt is about to use."""

    def connection_returned(self, conn: Any) -> None:
        """Called with a connection going back to the pool."""

    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        self.connection_lent(conn)
        return super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]

    def _put_conn(self, conn: Any) -> None:
        self.connection_returned(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class MethodRule(Retry):
    """``Retry`` whose subclasses widen which methods may be retried: ``_method_retryable(method, allowed)``
    gets urllib3's own answer (*allowed*) and gives the final one.

    Stands in for a public method hook urllib3 does not offer: ``is_retry`` and ``increment`` ask the
    private ``_is_method_retryable``; ``allowed_methods`` is the public data, the rule reading it (``False``
    means every method, a subclass may widen it) stays urllib3's.
    """

    def _method_retryable(self, method: str, allowed: bool) -> bool:
        """Whether *method* may be retried, given urllib3's answer *allowed*."""
        return allowed

    def _is_method_retryable(self, method: str) -> bool:
        return self._method_retryable(method, super()._is_method_retryable(method))


def retry_copy(retry: Retry, cls: type[Retry]) -> Retry:
    """An instance of *cls* (a subclass of ``type(retry)``) with exactly *retry*'s state.

    Stands in for ``retry.new()``, which runs ``__init__`` again (and a subclass's checks of its options)
    and takes only the options urllib3 knows; here every attribute is copied, the history included.
    """
    copy = cls.__new__(cls)
    copy.__dict__.update(retry.__dict__)
    return copy
