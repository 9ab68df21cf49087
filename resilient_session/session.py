"""The drop-in session: ``requests.Session`` plus timeouts, retries, a deadline and typed errors."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

import requests
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from . import _environ
from ._call import CallState, current_call, enter, leave
from ._redact import install_log_redaction, redact_url
from .adapter import DEFAULT_TIMEOUT, ResilientAdapter, TimeoutArg
from .auth import carry_credentials
from .breaker import CircuitBreaker
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .errors import CircuitOpenError, status_error_for
from .normalization import ensure_normalized
from .observability import DEFAULT_REQUEST_ID_HEADER, Events, begin_call, end_call, report_refused
from .retry import as_retry_policy

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ResilientSession"]

AuthArg = AuthBase | tuple[str, str] | None

# requests.Session.request() forwards no unknown keyword to send(), so a per-call deadline travels here.
_requested_deadline: ContextVar[float | None] = ContextVar("resilient_session_deadline", default=None)


class ResilientSession(requests.Session):
    """A :class:`requests.Session` whose every call has a timeout, retries, a deadline and typed errors.

    Replace ``requests.Session()`` with ``ResilientSession()``; everything not listed here behaves as in
    requests (hooks, cookies, redirects, streaming, proxies, mounting, pickling).

    :param base_url: Relative URLs are appended to it (``base_url="https://api.example.com/v1"`` and
        ``"/users"`` give ``https://api.example.com/v1/users``); absolute URLs are used as given.
    :param timeout: Default ``(connect, read)`` seconds, :data:`~resilient_session.adapter.DEFAULT_TIMEOUT`
        ``(3.05, 30)``, used when a call passes no ``timeout=``. A caller's ``timeout=`` always wins;
        ``(3.05, None)`` keeps a connect timeout but lets a stream read forever.
    :param retry: The retry policy of the adapters this session mounts: a
        :class:`~resilient_session.RetryPolicy`, a urllib3 ``Retry``, an int, or ``False``.
    :param deadline: Seconds for the whole call (attempts, backoff and redirects included), or ``None``.
        A call may pass its own ``deadline=``.
    :param auth: As ``session.auth``.
    :param raise_for_status: When True, a final 4xx/5xx answer (after retries) raises the matching
        :class:`~resilient_session.APIStatusError` subclass. ``response.raise_for_status()`` is unchanged.
    :param breaker: A :class:`~resilient_session.CircuitBreaker` shared by the mounted adapters, ``True``
        for ``CircuitBreaker()`` (default), or ``False``: no circuit breaking.
    :param budget: A :class:`~resilient_session.RetryBudget`, ``True`` (default) for this session's own
        ``RetryBudget()``, or ``False``. It only ever removes retries, never adds a failure.
    :param bulkhead: A :class:`~resilient_session.Bulkhead`, ``True`` for ``Bulkhead()``, or ``False``
        (default).
    :param integration: A name for the upstream (``"stripe"``), put on log lines, events and spans.
    :param request_id_header: Each call sends one id in this header, the same on every retry and
        redirect hop; a request that already has the header keeps its value. ``None`` sends none.
        Default ``"X-Request-ID"``.
    :param tracing: ``True`` (default): OpenTelemetry spans once the application installed a tracer
        provider; a ``TracerProvider`` to use that one; ``False``: never. See
        :mod:`resilient_session.tracing`.

    ``session.events`` (:class:`~resilient_session.Events`) takes callbacks told about every call.
    """

    __attrs__ = [
        *requests.Session.__attrs__,
        *("base_url", "timeout", "deadline", "retry", "raise_for_status", "breaker", "budget", "bulkhead"),
        *("events", "integration", "request_id_header"),
    ]

    #: Not in ``__attrs__``: a tracer provider is process-local, so a copy traces with the default.
    tracing: Any = True

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        retry: Retry | int | bool | None = None,
        deadline: float | None = None,
        auth: AuthArg = None,
        raise_for_status: bool = False,
        breaker: CircuitBreaker | bool = True,
        budget: RetryBudget | bool = True,
        bulkhead: Bulkhead | bool = False,
        integration: str | None = None,
        request_id_header: str | None = DEFAULT_REQUEST_ID_HEADER,
        tracing: Any = True,
    ) -> None:
        super().__init__()
        self.events = Events()
        self.integration = integration
        self.request_id_header = request_id_header
        self.tracing = tracing
        self.base_url = base_url
        self.timeout = timeout
        self.deadline = deadline
        self.retry = as_retry_policy(retry)
        self.raise_for_status = raise_for_status
        self.breaker = CircuitBreaker() if breaker is True else breaker or None
        self.budget = RetryBudget() if budget is True else budget or None
        self.bulkhead = Bulkhead() if bulkhead is True else bulkhead or None
        if auth is not None:
            self.auth = auth
        for prefix in ("https://", "http://"):
            adapter = ResilientAdapter(
                self.retry, breaker=self.breaker, budget=self.budget, bulkhead=self.bulkhead
            )
            self.mount(prefix, adapter)
        install_log_redaction()

    def __repr__(self) -> str:
        # A base URL may carry a password or an API key in its query string.
        base_url = redact_url(self.base_url) if self.base_url else self.base_url
        return f"<{type(self).__name__} base_url={base_url!r}>"

    @classmethod
    def from_config(cls, source: str | os.PathLike[str] | Mapping[str, Any], name: str | None = None) -> Self:
        """The session of integration *name* in an integrations file (TOML path or parsed mapping).

        Without *name* the file must define exactly one integration. For every integration at once, use
        :func:`~resilient_session.load_integrations`. The schema is in ``docs/configuration.md``.

        :raises InvalidConfigError: the file is invalid or names an unset environment variable.
        """
        from .config import session_from_config

        return cast("Self", session_from_config(source, name, cls))

    # -- redirects -------------------------------------------------------------------------------

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        """As requests, but a cross-origin hop loses every credential, not only ``Authorization``.

        Headers and query keys set by a :class:`~resilient_session.auth.CredentialAuth`, and headers named
        like secrets (``X-API-Key``, ``X-Auth-Token`` ...), are removed; same-origin hops keep them.
        """
        previous = response.request
        if previous is not None and previous.url and prepared_request.url:
            cross_origin: bool = self.should_strip_auth(  # type: ignore[no-untyped-call]
                previous.url, prepared_request.url
            )
            carry_credentials(previous, prepared_request, cross_origin=cross_origin)
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]

    # -- URLs ------------------------------------------------------------------------------------

    def join_url(self, url: str | bytes) -> str | bytes:
        """*url* joined to ``base_url`` when it is relative; absolute URLs come back unchanged."""
        if not self.base_url or isinstance(url, bytes) or "://" in url[:16]:
            return url
        if not url:
            return self.base_url
        return self.base_url.rstrip("/") + "/" + url.lstrip("/")

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if self.base_url and isinstance(request.url, str) and request.url != self.join_url(request.url):
            request = copy.copy(request)
            request.url = self.join_url(request.url)
        if _environ.REPLICATES_REQUESTS:
            return _environ.prepare_request(self, request)  # requests' steps, netrc look-up remembered
        return super().prepare_request(request)

    # -- environment -----------------------------------------------------------------------------

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        """As requests, with what it reads from the environment remembered until the environment changes.

        Proxy variables, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` and the netrc file are
        seen on the next call after any change, as requests sees them; see :mod:`resilient_session._environ`.
        """
        return _environ.merge_environment_settings(
            self, url, proxies, stream, verify, cert, super().merge_environment_settings
        )

    # -- sending ---------------------------------------------------------------------------------

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, deadline: float | None = None, **kwargs: Any
    ) -> requests.Response:
        """As :meth:`requests.Session.request`, plus ``deadline=`` (seconds) for this call alone."""
        if isinstance(url, str) and self._knows_open_circuits():
            self._fail_fast(method, url)
        token = _requested_deadline.set(deadline)
        try:
            return super().request(method, url, *args, **kwargs)
        finally:
            _requested_deadline.reset(token)

    def _only_resilient_adapters(self) -> bool:
        # Cheaper than get_adapter() per call: true unless the user mounted some other adapter.
        return all(isinstance(adapter, ResilientAdapter) for adapter in self.adapters.values())

    def _knows_open_circuits(self) -> bool:
        # Cheap guard for the common case: no breaker of ours has noted an open circuit.
        if self.breaker is not None and self.breaker.store.hints:
            return True
        for adapter in self.adapters.values():
            breaker = getattr(adapter, "breaker", None)
            if breaker and breaker.store.hints:
                return True
        return False

    def _fail_fast(self, method: str | bytes, url: str) -> None:
        # Before requests prepares anything (merging settings and reading proxy variables from the
        # environment alone takes ~0.2 ms), so an open circuit refuses in microseconds.
        absolute = str(self.join_url(url))
        try:
            adapter = self.get_adapter(absolute)
        except requests.exceptions.InvalidSchema:
            return  # requests reports it, as it always did
        if isinstance(adapter, ResilientAdapter):
            name = method.decode() if isinstance(method, bytes) else method
            try:
                adapter.refuse_if_open(name.upper(), absolute, self)
            except CircuitOpenError as error:
                report_refused(self, name.upper(), absolute, error)
                raise

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """As :meth:`requests.Session.send`; the outermost send of a call owns its state and deadline."""
        if (
            kwargs.get("timeout") is None
            and not self._only_resilient_adapters()
            and not isinstance(self.get_adapter(request.url or ""), ResilientAdapter)
        ):
            # A plain adapter mounted by the user still gets the session's default timeout.
            kwargs["timeout"] = self.timeout
        call = current_call()
        if call is not None and call.owner is self:
            # A redirect hop or a re-send from a hook: part of the call already in progress.
            return super().send(request, **kwargs)
        call = CallState.begin(request.method, request.url, default_timeout=self.timeout, owner=self)
        requested = _requested_deadline.get()
        call.tighten_deadline(self.deadline if requested is None else requested)
        observer = call.observer = begin_call(self, call, request)
        token = enter(call)
        try:
            response = super().send(request, **kwargs)
        except BaseException as exc:
            if observer is not None:
                end_call(observer, call, error=exc)
            raise
        finally:
            leave(token)
        ensure_normalized(response)  # a plain adapter the user mounted does not attach it
        if observer is not None:
            end_call(observer, call, response=response)
        if self.raise_for_status:
            error = status_error_for(response, attempts=call.attempts, elapsed=call.elapsed())
            if error is not None:
                raise error
        return response
