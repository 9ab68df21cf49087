"""The transport adapter: default timeout, retry policy, deadline and typed errors for one mount point."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests
from requests import exceptions as rexc
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import DecodeError, MaxRetryError, ProtocolError, ReadTimeoutError, SSLError
from urllib3.util import Timeout
from urllib3.util.retry import Retry

from . import errors
from ._call import CallState, RetryGate, current_call, enter, leave
from .breaker import CircuitBreaker
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .normalization import DEFAULT_NORMALIZER, Normalizer, with_normalized
from .retry import as_retry_policy
from .store import host_key

__all__ = ["DEFAULT_TIMEOUT", "ResilientAdapter"]

log = logging.getLogger("resilient_session")

#: (connect, read) seconds: connect a little over a multiple of 3 s (TCP's SYN retransmit), read 30 s.
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 30.0)

TimeoutArg = float | tuple[float | None, float | None] | Timeout | None

_CHUNK = 64 * 1024

# Slack under which a timeout counts as "the deadline ran out" rather than "the upstream was slow".
_DEADLINE_SLACK = 0.005


class _DeadlineReached(Exception):
    """Raised inside urllib3's retry loop when no time is left for another attempt."""


class _DeadlineAware:
    """Connection-pool mixin: each attempt's timeouts are clamped to the call's remaining deadline.

    urllib3 re-enters ``urlopen`` for every retry with the caller's original timeout; clamping here is
    the one place that sees every attempt.
    """

    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        call = current_call()
        remaining = call.remaining() if call is not None else None
        if remaining is not None:
            if remaining <= 0:
                raise _DeadlineReached()
            kwargs["timeout"] = _clamp(kwargs.get("timeout"), remaining)
        if call is not None and call.observer is not None:
            # requests passes headers by keyword; urllib3's retry re-entry passes them by position.
            headers = kwargs.get("headers") if len(args) < 2 else args[1]
            call.observer.attempt(call, headers, on_wire=True)
        return super().urlopen(method, url, *args, **kwargs)  # type: ignore[misc]


class _HTTPPool(_DeadlineAware, HTTPConnectionPool):
    pass


class _HTTPSPool(_DeadlineAware, HTTPSConnectionPool):
    pass


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


def _clamp(timeout: Any, remaining: float) -> Timeout:
    if isinstance(timeout, Timeout):
        connect, read = timeout._connect, timeout._read
    elif isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = timeout

    def cap(value: Any) -> float:
        return min(value, remaining) if isinstance(value, (int, float)) else remaining

    return Timeout(connect=cap(connect), read=cap(read), total=remaining)


class ResilientAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` with a retry policy, a default timeout and a deadline.

    Mount one per domain to give it its own policy::

        session.mount("https://api.example.com/", ResilientAdapter(retry=RetryPolicy(total=5), timeout=10))

    :param retry: A :class:`~resilient_session.RetryPolicy`, a urllib3 ``Retry``, an int, or ``False``
        (no retries). Stored as ``max_retries``, exactly where requests and ``responses`` look.
    :param timeout: Applied when the caller passes none. ``None`` inherits the session's default,
        or :data:`DEFAULT_TIMEOUT` outside a :class:`~resilient_session.ResilientSession`.
    :param deadline: Seconds for each call through this adapter, attempts and backoff included; a
        session-wide deadline still applies, whichever ends first.
    :param breaker: A :class:`~resilient_session.CircuitBreaker`: while a host's circuit is open its calls
        fail at once with :class:`~resilient_session.CircuitOpenError`, no socket opened.
    :param budget: A :class:`~resilient_session.RetryBudget` that each retry must pay into.
    :param bulkhead: A :class:`~resilient_session.Bulkhead` capping calls in flight per host.

    ``breaker``, ``budget`` and ``bulkhead`` default to ``None``: inherit the session's (a
    :class:`~resilient_session.ResilientSession` has a breaker and a budget by default), so mounting an
    adapter for one domain changes only what it is given. ``False`` turns one off for this adapter.
    :param pool_connections, pool_maxsize, pool_block: As for ``HTTPAdapter``.
    """

    __attrs__ = [*HTTPAdapter.__attrs__, "timeout", "deadline", "normalizer", "breaker", "budget", "bulkhead"]

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
        self.timeout = timeout
        self.deadline = deadline
        self.breaker = breaker
        self.budget = budget
        self.bulkhead = bulkhead
        if max_retries is not None and retry is None:
            retry = max_retries
        super().__init__(max_retries=as_retry_policy(retry), **kwargs)

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        # Attached here, not as a session hook: every response (redirect hops and `responses` mocks
        # included) passes through build_response, and session.hooks stays exactly what the user set.
        # Lazy: nothing is created or parsed until response.normalized is read.
        return with_normalized(response, self.normalizer)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if proxy.lower().startswith("http"):
            manager.pool_classes_by_scheme = _POOL_CLASSES
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
        call = current_call()
        if call is None:
            call = CallState.begin(request.method, request.url)
            token = enter(call)
            try:
                return self._guarded(call, request, stream, timeout, verify, cert, proxies)
            finally:
                leave(token)
        return self._guarded(call, request, stream, timeout, verify, cert, proxies)

    def policies(
        self, session: object | None
    ) -> tuple[CircuitBreaker | None, RetryBudget | None, Bulkhead | None]:
        """The breaker, budget and bulkhead in force for a call through this adapter from *session*."""
        return (
            _inherit(self.breaker, session, "breaker"),
            _inherit(self.budget, session, "budget"),
            _inherit(self.bulkhead, session, "bulkhead"),
        )

    def refuse_if_open(self, method: str, url: str, session: object | None = None) -> None:
        """Fail now with :class:`~resilient_session.CircuitOpenError` if the circuit for *url* is known
        to be open; the session calls this before preparing the request, so a refusal costs microseconds."""
        breaker = _inherit(self.breaker, session, "breaker")
        if breaker is not None and breaker.store.hints:
            breaker.check(breaker.key_for(url), method=method, url=url)

    def _guarded(self, call: CallState, request: requests.PreparedRequest, *args: Any) -> requests.Response:
        """Circuit breaker, bulkhead and retry budget around one send; a refused call opens no socket."""
        breaker, budget, bulkhead = self.policies(call.owner)
        if breaker is None and budget is None and bulkhead is None:
            return self._send(call, request, *args)
        host = host_key(request.url or "")  # each policy's key_for(), parsing the URL once
        permit = breaker.acquire(_scope(breaker.name, host), request) if breaker is not None else None
        if permit is not None and call.observer is not None:
            call.observer.circuit(call, "half_open" if permit.probe else "closed")
        compartment = _scope(bulkhead.name, host) if bulkhead is not None else None
        budget_gate = budget.gate(_scope(budget.name, host)) if budget is not None else None
        gates: list[RetryGate] = []
        if breaker is not None and permit is not None:
            gates.append(breaker.gate(permit))
        if budget_gate is not None:
            gates.append(budget_gate)
        holding = False
        call.retry_gates.extend(gates)
        try:
            if bulkhead is not None and compartment is not None:
                bulkhead.acquire(compartment, request, max_wait=call.remaining())
                holding = True
            response = self._send(call, request, *args)
        except BaseException as exc:
            if breaker is not None and permit is not None:
                breaker.record(permit, error=exc)
            raise
        finally:
            for gate in gates:
                call.retry_gates.remove(gate)
            if holding and bulkhead is not None and compartment is not None:
                bulkhead.release(compartment)
        if breaker is not None and permit is not None:
            breaker.record(permit, response=response)
        if budget_gate is not None and response.status_code < 500 and response.status_code != 429:
            budget_gate.record_success()
        return response

    def _send(
        self,
        call: CallState,
        request: requests.PreparedRequest,
        stream: bool,
        timeout: TimeoutArg,
        verify: bool | str,
        cert: Any,
        proxies: Mapping[str, str] | None,
    ) -> requests.Response:
        if timeout is None:
            timeout = self.timeout if self.timeout is not None else call.default_timeout or DEFAULT_TIMEOUT
        policy = self.max_retries
        call.attempts = 1
        call.idempotency_key = bool(
            getattr(policy, "idempotency_key_header", None)
            and policy.idempotency_key_header in request.headers  # type: ignore[attr-defined]
        )
        call.tighten_deadline(self.deadline)
        while True:
            if call.deadline_passed():
                raise self._deadline_error(call, request, "the deadline ran out before an attempt")
            if call.observer is not None:
                call.observer.attempt(call, request.headers, on_wire=False)
            try:
                response = super().send(request, stream, _initial(timeout, call), verify, cert, proxies)
            except _DeadlineReached:
                raise self._deadline_error(call, request, "the deadline ran out between attempts") from None
            except rexc.RequestException as exc:
                raise self._typed(exc, call, request) from None
            call.last_status = response.status_code
            if call.observer is not None:
                call.observer.answered(call, response.status_code)
            response.attempts = call.attempts  # type: ignore[attr-defined]
            if stream:
                return response
            try:
                self._read_body(response, call, request)
                return response
            except (rexc.ChunkedEncodingError, rexc.ConnectionError) as exc:
                policy = self._retry_after_body_error(policy, response, request, exc, call)

    def _read_body(
        self, response: requests.Response, call: CallState, request: requests.PreparedRequest
    ) -> None:
        """Read the body here, inside the retry scope, so a break mid-body is retried and typed."""
        if call.deadline_at is None:
            response.content  # noqa: B018 - reading caches the body, as Session.send would
            return
        # With a deadline, read what has arrived (read1) and look at the clock between reads: the
        # read timeout bounds one recv, so a slow drip would otherwise outlive the deadline.
        chunks = []
        try:
            while True:
                if call.deadline_passed():
                    response.close()
                    raise self._deadline_error(call, request, "the deadline ran out while reading the body")
                _tighten_socket_timeout(response, call)
                chunk = response.raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
        # The same translation requests' iter_content applies, so callers see the same exceptions.
        except ProtocolError as exc:
            raise rexc.ChunkedEncodingError(exc) from exc
        except DecodeError as exc:
            raise rexc.ContentDecodingError(exc) from exc
        except ReadTimeoutError as exc:
            raise rexc.ConnectionError(exc) from exc
        except SSLError as exc:
            raise rexc.SSLError(exc) from exc
        response._content = b"".join(chunks)
        response._content_consumed = True  # type: ignore[attr-defined]

    def _retry_after_body_error(
        self,
        policy: Retry,
        response: requests.Response,
        request: requests.PreparedRequest,
        exc: rexc.RequestException,
        call: CallState,
    ) -> Retry:
        response.close()
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else ProtocolError(str(exc))
        try:
            # *policy* is this adapter's chain of body retries; the status and connection retries
            # inside each attempt are counted by urllib3 on its own copy.
            new = policy.increment(request.method, request.url, error=cause)
        except (MaxRetryError, ProtocolError, ReadTimeoutError, OSError):
            raise self._typed(exc, call, request) from None
        new.sleep()
        return new

    # -- errors ----------------------------------------------------------------------------------

    def _context(self, call: CallState, request: requests.PreparedRequest) -> dict[str, Any]:
        return {
            "request": request,
            "attempts": call.attempts,
            "elapsed": call.elapsed(),
            "status": call.last_status,
        }

    def _deadline_error(
        self, call: CallState, request: requests.PreparedRequest, what: str
    ) -> errors.DeadlineExceededError:
        return errors.DeadlineExceededError(what, **self._context(call, request))

    def _typed(
        self, exc: rexc.RequestException, call: CallState, request: requests.PreparedRequest
    ) -> rexc.RequestException:
        """The typed twin of *exc*; exceptions that signal programming errors pass through unchanged."""
        if isinstance(exc, errors.APIError):
            return exc
        cause = _innermost(exc)
        ctx = self._context(call, request)
        detail = _describe(cause)
        timed_out = isinstance(exc, rexc.Timeout) or isinstance(cause, ReadTimeoutError)
        if timed_out and call.deadline_passed(_DEADLINE_SLACK):
            return errors.DeadlineExceededError(f"the deadline ran out: {detail}", **ctx)
        if isinstance(exc, rexc.ConnectionError) and isinstance(cause, ReadTimeoutError):
            # Retries exhausted on read timeouts arrive wrapped in MaxRetryError; a stall mid-body
            # arrives bare, from requests' iter_content.
            mid_body = not isinstance(exc.args[0], MaxRetryError)
            cls = errors.StalledBodyError if mid_body else errors.APIReadTimeout
            return cls(f"read timed out: {detail}", **ctx)
        for theirs, ours, what in _TWINS:
            if isinstance(exc, theirs):
                return ours(f"{what}: {detail}", **ctx)
        return exc


# requests' exception -> our twin, most specific first (ConnectTimeout is also a ConnectionError ...).
_TWINS: tuple[tuple[type[rexc.RequestException], type[errors.APIError], str], ...] = (
    (rexc.ConnectTimeout, errors.APIConnectTimeout, "connect timed out"),
    (rexc.ReadTimeout, errors.APIReadTimeout, "read timed out"),
    (rexc.RetryError, errors.RetryExhaustedError, "retries exhausted"),
    (rexc.ChunkedEncodingError, errors.IncompleteBodyError, "the body broke off"),
    (rexc.SSLError, errors.APISSLError, "TLS failed"),
    (rexc.ProxyError, errors.APIProxyError, "proxy failed"),
    (rexc.ConnectionError, errors.APIConnectionError, "connection failed"),
)


def _inherit(own: Any, session: object | None, name: str) -> Any:
    if own is False:
        return None
    return own if own is not None else getattr(session, name, None)


def _scope(name: str | None, host: str) -> str:
    return host if name is None else name


def _initial(timeout: TimeoutArg, call: CallState) -> Any:
    remaining = call.remaining()
    return timeout if remaining is None else _clamp(timeout, remaining)


def _tighten_socket_timeout(response: requests.Response, call: CallState) -> None:
    # The read timeout bounds each recv, not the whole body; a slow drip would outlive the deadline.
    remaining = call.remaining()
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None or remaining is None:
        return
    current = sock.gettimeout()
    sock.settimeout(max(0.001, remaining if current is None else min(current, remaining)))


def _innermost(exc: BaseException) -> BaseException:
    """Walk requests' and urllib3's wrappers down to the error that happened on the wire."""
    seen = exc
    for _ in range(5):
        if isinstance(seen, MaxRetryError) and seen.reason is not None:
            seen = seen.reason
        elif (
            isinstance(seen, rexc.RequestException) and seen.args and isinstance(seen.args[0], BaseException)
        ):
            seen = seen.args[0]
        else:
            break
    return seen


def _describe(cause: BaseException) -> str:
    # urllib3's own messages name the pool and sometimes the path with its query: keep only the reason.
    if isinstance(cause, ProtocolError) and len(cause.args) > 1:
        return f"{cause.args[0]} {cause.args[1]!r}"
    text = str(cause)
    if "): " in text:
        text = text.split("): ", 1)[1]
    return text or type(cause).__name__
