"""The transport adapter: default timeout, retry policy, deadline and typed errors for one mount point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.util.retry import Retry

from . import _response
from ._attempts import DEFAULT_TIMEOUT, TimeoutArg, guarded_send, inherit, policies, untouched
from ._instrument import instrument_pools
from ._lookups import connection_pool, request_line
from ._mounted import MountedAdapter
from ._options import check_session_option
from ._pools import DeadlineAwarePool
from ._subclassing import inherits_from_requests
from .normalization.view import DEFAULT_NORMALIZER, NormalizableResponse, Normalizer, with_normalized
from .policies.breaker import CircuitBreaker
from .policies.budget import RetryBudget
from .policies.bulkhead import Bulkhead
from .retry import as_retry_policy

__all__ = [
    "DEFAULT_TIMEOUT",
    "DeadlineAwarePool",
    "MountedAdapter",
    "ResilientAdapter",
    "TimeoutArg",
    "follows_session_retry",
    "guarded_send",
]


class ResilientAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` with a retry policy, a default timeout and a deadline.

    Mount one per domain to give it its own policy::

        session.mount("https://api.example.com/", ResilientAdapter(retry=RetryPolicy(total=5), timeout=10))

    :param retry: A :class:`~resilient_session.RetryPolicy`, a urllib3 ``Retry``, an int, or ``False``
        (no retries). Stored as ``max_retries``, exactly where requests and ``responses`` look.
        ``None`` (default): the session's ``retry``, also when it is changed later.
    :param timeout: Applied when the caller passes none. ``None`` inherits the session's default,
        or :data:`DEFAULT_TIMEOUT` outside a :class:`~resilient_session.ResilientSession`.
    :param deadline: Seconds for each call through this adapter, attempts and backoff included; a
        session-wide deadline still applies, whichever ends first.
    :param breaker: A :class:`~resilient_session.CircuitBreaker`: while a host's circuit is open its calls
        fail at once with :class:`~resilient_session.CircuitOpenError`, no socket opened.
    :param budget: A :class:`~resilient_session.RetryBudget` that each retry must pay into.
    :param bulkhead: A :class:`~resilient_session.Bulkhead` capping calls in flight per host.
    :param max_retries: As for ``HTTPAdapter``; used when ``retry`` is not given.
    :param kwargs: ``pool_connections``, ``pool_maxsize`` and ``pool_block``, as for ``HTTPAdapter``.

    ``breaker``, ``budget`` and ``bulkhead`` default to ``None``: inherit the session's (a
    :class:`~resilient_session.ResilientSession` has a breaker and a budget by default), so mounting an
    adapter for one domain changes only what it is given. ``False`` turns one off for this adapter.
    """

    #: Whether ``super().build_response`` is requests' own (no mixin after this class in the MRO
    #: overrides it): then the response is built from its parts (see ``_response``).
    _plain_build_response: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_build_response = inherits_from_requests(
            cls, ResilientAdapter, "build_response", HTTPAdapter
        )

    __attrs__ = [
        *HTTPAdapter.__attrs__,
        *("timeout", "deadline", "normalizer", "breaker", "budget", "bulkhead", "inherits_retry"),
    ]

    #: Builds each response's lazy ``response.normalized``; set a changed copy per adapter to change it.
    normalizer: Normalizer = DEFAULT_NORMALIZER

    def __init__(
        self,
        retry: Retry | int | bool | None = None,
        *,
        timeout: TimeoutArg = None,
        deadline: float | None = None,
        max_retries: Retry | int | None = None,
        breaker: CircuitBreaker | bool | None = None,
        budget: RetryBudget | bool | None = None,
        bulkhead: Bulkhead | bool | None = None,
        **kwargs: Any,
    ) -> None:
        check_session_option("timeout", timeout)
        check_session_option("deadline", deadline)
        self.timeout = timeout
        self.deadline = deadline
        self.breaker = breaker
        self.budget = budget
        self.bulkhead = bulkhead
        if max_retries is not None and retry is None:
            retry = max_retries
        #: True when no policy was given: a session mounting this adapter sets ``max_retries`` to its own
        #: ``retry``, now and whenever that changes.
        self.inherits_retry = retry is None
        super().__init__(max_retries=as_retry_policy(retry), **kwargs)

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        if self._plain_build_response:
            # requests' answer, built from its parts as the Response class with a lazy view
            response = _response.build_response(self, req, resp, NormalizableResponse)
            if type(response) is NormalizableResponse:
                if self.normalizer is not DEFAULT_NORMALIZER:
                    response._normalizer = self.normalizer
                return response
        else:
            response = super().build_response(req, resp)
        # Attached here, not as a session hook: every response (redirect hops and `responses` mocks
        # included) passes through build_response, and session.hooks stays exactly what the user set.
        # Lazy: nothing is created or parsed until response.normalized is read.
        return with_normalized(response, self.normalizer)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        """As requests; without a proxy, the pool is found by a key remembered per host and TLS settings
        (see :mod:`resilient_session._lookups`)."""
        pool = connection_pool(self, request, verify, proxies, cert)
        if pool is None:
            return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        return pool

    def request_url(self, request: requests.PreparedRequest, proxies: Mapping[str, str] | None) -> str:
        """As requests; without a proxy, remembered per URL (see :mod:`resilient_session._lookups`)."""
        line = request_line(self, request, proxies)
        if line is None:
            return super().request_url(request, proxies)
        return line

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        instrument_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        instrument_pools(manager)
        return manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: TimeoutArg = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send *request*; failures come back as :mod:`resilient_session.errors` types."""
        return guarded_send(self, super().send, request, stream, timeout, verify, cert, proxies)

    def policies(
        self, session: object | None
    ) -> tuple[CircuitBreaker | None, RetryBudget | None, Bulkhead | None]:
        """The breaker, budget and bulkhead in force for a call through this adapter from *session*."""
        return policies(self, session)

    def refuse_if_open(self, method: str, url: str, session: object | None = None) -> None:
        """Fail now with :class:`~resilient_session.CircuitOpenError` if the circuit for *url* is known
        to be open; the session calls this before preparing the request, so a refusal costs microseconds."""
        refuse_if_open(self, method, url, session)


def refuse_if_open(adapter: BaseAdapter, method: str, url: str, session: object | None = None) -> None:
    """:meth:`ResilientAdapter.refuse_if_open` for any adapter (one without a breaker uses the session's)."""
    breaker = inherit(getattr(adapter, "breaker", None), session, "breaker")
    if breaker is not None and breaker.store.hints:
        base_url = getattr(session, "base_url", None)
        breaker.check(breaker.key_for(url), method=method, url=url, base_url=base_url)


def follows_session_retry(adapter: BaseAdapter, previous: Retry | None = None) -> bool:
    """True when *adapter*'s retries are the session's to set: a :class:`ResilientAdapter` given no policy,
    or an ``HTTPAdapter`` whose ``max_retries`` was never configured (still what ``HTTPAdapter()`` makes)
    or is the session's *previous* policy, which it took when mounted."""
    if isinstance(adapter, ResilientAdapter):
        return adapter.inherits_retry
    if not isinstance(adapter, HTTPAdapter):
        return False
    retries = adapter.max_retries
    if previous is not None and retries is previous:
        return True
    return untouched(retries)
