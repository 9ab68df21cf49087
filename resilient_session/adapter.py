"""The transport adapter: default timeout, retry policy, deadline and typed errors for one mount point."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import requests
from requests import exceptions as rexc
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.utils import rewind_body, select_proxy
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError, SSLError
from urllib3.util import Timeout
from urllib3.util.retry import Retry

from . import errors
from ._call import CallState, RetryGate, current_call, enter, leave
from ._compat.requests import body_position, mark_consumed
from ._compat.urllib3 import ConnectionHooks, pools_with, timeout_parts
from ._hosts import host_key
from ._options import check_session_option
from ._quota import open_gate
from ._watchdog import WATCHDOG
from .normalization.body import Overflow, read_bounded
from .normalization.view import DEFAULT_NORMALIZER, Normalizer, with_normalized
from .policies.breaker import CircuitBreaker
from .policies.budget import RetryBudget
from .policies.bulkhead import Bulkhead
from .retry import as_retry_policy, call_aware, no_retries

__all__ = ["DEFAULT_TIMEOUT", "MountedAdapter", "ResilientAdapter", "follows_session_retry", "guarded_send"]

#: (connect, read) seconds: connect a little over a multiple of 3 s (TCP's SYN retransmit), read 30 s.
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 30.0)

TimeoutArg = float | tuple[float | None, float | None] | Timeout | None

# Slack under which a timeout counts as "the deadline ran out" rather than "the upstream was slow".
_DEADLINE_SLACK = 0.005


class _DeadlineReached(Exception):
    """Raised inside urllib3's retry loop when no time is left for another attempt."""


class DeadlineAwarePool(ConnectionHooks):
    """Connection-pool mixin through which a call's deadline and retry chain reach every attempt.

    urllib3 re-enters ``urlopen`` for every retry with the caller's original timeout; this is the one
    place that sees every attempt. It clamps each attempt's timeouts to the time left, continues the
    call's retry chain (so a body broken off after urllib3's own retries is counted on the same
    ``Retry``), turns retries off for a body that cannot be sent twice, and tells the watchdog which
    connection the call is reading from.
    """

    def urlopen(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Any = None,
        retries: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        call = current_call()
        if call is not None:
            remaining = call.remaining()
            if remaining is not None:
                if remaining <= 0 or call.expired:
                    raise _DeadlineReached()
                kwargs["timeout"] = _clamp(kwargs.get("timeout"), remaining)
            if call.resume is not None:
                retries, call.resume = call.resume, None
            elif call.retries is None and isinstance(retries, Retry):
                # First attempt of this send: the adapter's own policy, whoever wrote it.
                retries = call_aware(_stand_in(call, retries))
                if not call.replayable:
                    retries = no_retries(retries)
                call.retries = retries
            if call.observer is not None:
                call.observer.attempt(call, headers, on_wire=True)
        return super().urlopen(method, url, body, headers, retries, *args, **kwargs)  # type: ignore[misc]

    def connection_lent(self, conn: Any) -> None:
        call = current_call()
        if call is not None and call.watched:
            WATCHDOG.attach(call, conn)

    def connection_returned(self, conn: Any) -> None:
        call = current_call()
        if call is not None and call.connection is not None:
            WATCHDOG.detach(call, conn)


def instrument_pools(manager: Any) -> None:
    """Make the pools *manager* (a urllib3 ``PoolManager``) creates from now on deadline-aware."""
    pools_with(manager, DeadlineAwarePool)


def _clamp(timeout: Any, remaining: float) -> Timeout:
    if isinstance(timeout, Timeout):
        connect, read = timeout_parts(timeout)
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
        response = super().build_response(req, resp)
        # Attached here, not as a session hook: every response (redirect hops and `responses` mocks
        # included) passes through build_response, and session.hooks stays exactly what the user set.
        # Lazy: nothing is created or parsed until response.normalized is read.
        return with_normalized(response, self.normalizer)

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
        return _policies(self, session)

    def refuse_if_open(self, method: str, url: str, session: object | None = None) -> None:
        """Fail now with :class:`~resilient_session.CircuitOpenError` if the circuit for *url* is known
        to be open; the session calls this before preparing the request, so a refusal costs microseconds."""
        refuse_if_open(self, method, url, session)


def refuse_if_open(adapter: BaseAdapter, method: str, url: str, session: object | None = None) -> None:
    """:meth:`ResilientAdapter.refuse_if_open` for any adapter (one without a breaker uses the session's)."""
    breaker = _inherit(getattr(adapter, "breaker", None), session, "breaker")
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
    return _untouched(retries)


def _untouched(retries: Any) -> bool:
    """True when *retries* is what ``HTTPAdapter()`` makes when given no ``max_retries``."""
    default = _default_max_retries()
    # requests builds a fresh Retry per adapter: only its type and every option can say "untouched".
    return type(retries) is type(default) and vars(retries) == vars(default)


def _stand_in(call: CallState, retries: Any) -> Any:
    """*retries*, or the call's stand-in policy when *retries* is an untouched default (see CallState)."""
    standin = call.retry_standin
    if standin is not None and _untouched(retries):
        return standin
    return retries


@cache
def _default_max_retries() -> Retry:
    # What this version of requests gives an adapter built with no max_retries (or max_retries=0).
    adapter = HTTPAdapter()
    adapter.close()
    return adapter.max_retries


Send = Callable[..., requests.Response]


class MountedAdapter(BaseAdapter):
    """How a :class:`~resilient_session.ResilientSession` sends through an adapter that is not a
    :class:`ResilientAdapter` (one legacy code mounted): a wrapper for the length of one send.

    Through an ``HTTPAdapter`` (or a subclass, whatever it overrides) a call gets what it gets through
    a ``ResilientAdapter``, except that a ``max_retries`` the adapter was given decides what is retried
    (one left at requests' default is the session's, see :meth:`ResilientSession.mount`): the
    deadline reaches every attempt, the breaker, budget and bulkhead are the session's, failures are
    typed. Through any other adapter it gets what needs no socket of ours: the default timeout as
    ``timeout=``, the breaker, budget and bulkhead, the deadline checked before sending, typed errors.
    """

    def __init__(self, adapter: BaseAdapter) -> None:
        super().__init__()
        self.adapter = adapter

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: TimeoutArg = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        adapter = self.adapter
        if isinstance(adapter, HTTPAdapter):
            _instrument(adapter, request, proxies)
        return guarded_send(adapter, adapter.send, request, stream, timeout, verify, cert, proxies)

    def close(self) -> None:
        self.adapter.close()


def _instrument(
    adapter: HTTPAdapter, request: requests.PreparedRequest, proxies: Mapping[str, str] | None
) -> None:
    """Make the pools *adapter* will use for *request* deadline-aware, before it sends."""
    manager = getattr(adapter, "poolmanager", None)
    if manager is not None:
        instrument_pools(manager)
    proxy = select_proxy(request.url or "", dict(proxies or {}))
    if proxy:
        # proxy_manager_for() creates and caches the manager send() is about to use.
        instrument_pools(adapter.proxy_manager_for(proxy))


def guarded_send(
    adapter: BaseAdapter,
    send: Send,
    request: requests.PreparedRequest,
    stream: bool = False,
    timeout: TimeoutArg = None,
    verify: bool | str = True,
    cert: Any = None,
    proxies: Mapping[str, str] | None = None,
) -> requests.Response:
    """One hop of a call through *adapter*, whose transport is *send*: breaker, bulkhead and retry
    budget around it, the default timeout, the deadline, one retry chain and typed errors.

    A :class:`ResilientAdapter` sends through here; so does any other adapter a
    :class:`~resilient_session.ResilientSession` has mounted (see ``docs/adapters.md``).
    """
    call = current_call()
    if call is None:
        call = CallState.begin(request.method, request.url)
        token = enter(call)
        try:
            return _guarded(adapter, send, call, request, stream, timeout, verify, cert, proxies)
        finally:
            leave(token)
    return _guarded(adapter, send, call, request, stream, timeout, verify, cert, proxies)


def _policies(
    adapter: BaseAdapter, session: object | None
) -> tuple[CircuitBreaker | None, RetryBudget | None, Bulkhead | None]:
    return (
        _inherit(getattr(adapter, "breaker", None), session, "breaker"),
        _inherit(getattr(adapter, "budget", None), session, "budget"),
        _inherit(getattr(adapter, "bulkhead", None), session, "bulkhead"),
    )


def _guarded(
    adapter: BaseAdapter, send: Send, call: CallState, request: requests.PreparedRequest, *args: Any
) -> requests.Response:
    """The rate limit's slot (waited for, or refused at once), then the other policies around one send."""
    quota = open_gate(_inherit(getattr(adapter, "rate_limit", None), call.owner, "rate_limit"), call, request)
    if quota is None:
        return _protected(adapter, send, call, request, *args)
    response = _protected(adapter, send, call, request, *args)
    quota.answered(response.headers, response.status_code)
    return response


def _protected(
    adapter: BaseAdapter, send: Send, call: CallState, request: requests.PreparedRequest, *args: Any
) -> requests.Response:
    """Circuit breaker, bulkhead and retry budget around one send; a refused call opens no socket."""
    breaker, budget, bulkhead = _policies(adapter, call.owner)
    if breaker is None and budget is None and bulkhead is None:
        return _attempts(adapter, send, call, request, *args)
    host = host_key(request.url or "")  # each policy's key_for(), parsing the URL once
    permit = None
    if breaker is not None:
        base_url = getattr(call.owner, "base_url", None)  # the default route groups start below it
        permit = breaker.acquire(_scope(breaker.name, host), request, base_url=base_url)
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
        response = _attempts(adapter, send, call, request, *args)
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
        guard = response.__dict__.get("iter_content")
        if isinstance(guard, _GuardedRead):
            guard.after_read.append(budget_gate.record_success)  # a body broken after the hooks earns none
        else:
            budget_gate.record_success()
    return response


def _attempts(
    adapter: BaseAdapter,
    send: Send,
    call: CallState,
    request: requests.PreparedRequest,
    stream: bool,
    timeout: TimeoutArg,
    verify: bool | str,
    cert: Any,
    proxies: Mapping[str, str] | None,
) -> requests.Response:
    """Send until the retry chain ends; every failure leaves as a typed error with no secret in its chain.

    urllib3 retries statuses and connection errors inside ``send``; a body that breaks off while it is
    read here is counted on the same ``Retry`` (``call.retries``) and sent again from the top, so one
    hop never sends more than ``total + 1`` requests.
    """
    if timeout is None:
        own = getattr(adapter, "timeout", None)
        timeout = own if _is_timeout(own) else call.default_timeout or DEFAULT_TIMEOUT
    policy = _stand_in(call, getattr(adapter, "max_retries", None))
    call.attempts = 1
    call.retries = call.resume = None
    call.replayable = _replayable(request)
    call.idempotency_key = bool(
        getattr(policy, "idempotency_key_header", None) and policy.idempotency_key_header in request.headers
    )
    call.tighten_deadline(getattr(adapter, "deadline", None))
    # The first body that broke off: if the attempts after it fail too, the call raises this, the
    # exception plain requests raises here (ChunkedEncodingError ...), not the last attempt's.
    first_break: rexc.RequestException | None = None
    call.hop = ((request.method or call.method).upper(), request.url or call.raw_url)
    carried = call.broken_after_hooks
    if isinstance(carried, _BrokenAfterHooks) and carried.resend:
        # The session sends this hop again: its body broke off after the hooks. Same chain, same count.
        call.broken_after_hooks = None
        call.attempts, call.retries = carried.attempts, carried.chain
        first_break = carried.broken
        _next_after_broken_body(policy, call, request, carried.broken, first_break)
    while True:
        if call.deadline_passed():
            raise _deadline_error(call, request, "the deadline ran out before an attempt")
        if call.observer is not None:
            call.observer.attempt(call, request.headers, on_wire=False)
        failure: BaseException | None = None
        try:
            response = send(
                request,
                stream=stream,
                timeout=_initial(timeout, call),
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
        except _DeadlineReached:
            failure = _deadline_error(call, request, "the deadline ran out between attempts")
        except rexc.RequestException as exc:
            failure = _typed(exc if first_break is None else first_break, call, request)
        finally:
            call.resume = None
        if failure is not None:
            raise failure  # outside the except block: no __context__ holding urllib3's raw message
        if call.cut_off():
            response.close()
            raise _deadline_error(call, request, "the deadline ran out while waiting for the response")
        call.last_status = response.status_code
        if call.observer is not None:
            call.observer.answered(call, response.status_code)
        response.attempts = call.attempts  # type: ignore[attr-defined]
        if stream or response.is_redirect:
            # A redirect hop's body is read by requests itself, which ignores its errors.
            return response
        limit = getattr(call.owner, "max_response_size", None)
        if _hooks_first(request):
            # requests hands a response to its hooks with the body unread, and auth handlers rely on it
            # (requests-ntlm reads the live socket for channel binding). Whoever reads it (a hook, or
            # requests after them) reads it as below; a break mid-body is sent again by the session.
            _GuardedRead(response, limit, call, request)
            return response
        # Read inside the retry scope, so a break mid-body is retried.
        broken = _read(response, limit, call, request)
        if broken is None:
            return response
        response.close()
        first_break = first_break or broken
        _next_after_broken_body(policy, call, request, broken, first_break)


def _hooks_first(request: requests.PreparedRequest) -> bool:
    """True when requests will give the response of *request* to response hooks (the user's, or an auth
    handler's) before it reads the body: the adapter then leaves the body unread, as requests does."""
    hooks = getattr(request, "hooks", None)
    return bool(hooks.get("response")) if isinstance(hooks, dict) else False


def _read(
    response: requests.Response, limit: int | None, call: CallState, request: requests.PreparedRequest
) -> rexc.RequestException | None:
    """Read the body of a non-streamed *response*; return the error if it broke off mid-way.

    Raises :class:`~resilient_session.MalformedResponseError` past *limit* decoded bytes (or for an
    otherwise unusable body) and :class:`~resilient_session.DeadlineExceededError` when the watchdog
    cut the read off.
    """
    broken: rexc.RequestException | None = None
    unusable: BaseException | None = None
    try:
        if limit is None:
            response.content  # noqa: B018 - reading caches the body, as Session.send would
        elif isinstance(read_bounded(response, limit), Overflow):
            unusable = _too_large(limit, response, call, request)
    except (rexc.ChunkedEncodingError, rexc.ConnectionError) as exc:
        broken = exc
    except rexc.RequestException as exc:
        unusable = _typed(exc, call, request)
    if call.cut_off():
        # The watchdog shut the socket: whatever the read returned (even a body that merely looks
        # complete, with no Content-Length) is not the answer.
        response.close()
        raise _deadline_error(call, request, "the deadline ran out while reading the body")
    if unusable is not None:
        raise unusable
    return broken


@dataclass
class _BrokenAfterHooks:
    """A body that broke off while read after the response hooks: what sending the hop again needs."""

    #: The typed error raised; the session sends again only when this very object reaches it.
    error: BaseException
    #: requests' exception, as the adapter's own read would have caught it.
    broken: rexc.RequestException
    #: The retry chain of the attempt that answered, and the attempts made so far.
    chain: Any
    attempts: int
    #: Set by the session: the next send through an adapter continues the chain.
    resend: bool = False


class _GuardedRead:
    """Stands in for ``response.iter_content`` while the body waits for the response hooks, so every later
    read of it (a hook's ``r.content``, ``r.text``, ``r.json()``, requests' own after the hooks) is what
    the adapter's own read is: bounded by *limit* decoded bytes, typed errors,
    :class:`~resilient_session.DeadlineExceededError` once the watchdog cut the read off, and a body
    that breaks off counted on the retry chain (a session sends the hop again, see ``_BrokenAfterHooks``).
    """

    __slots__ = ("after_read", "attempts", "call", "chain", "limit", "read", "request", "response")

    def __init__(
        self,
        response: requests.Response,
        limit: int | None,
        call: CallState,
        request: requests.PreparedRequest,
    ) -> None:
        self.response, self.limit, self.call, self.request = response, limit, call, request
        self.read = response.iter_content
        self.chain, self.attempts = call.retries, call.attempts
        #: Run once the body was read whole (the budget's refund: a body that broke off earns none).
        self.after_read: list[Callable[[], None]] = []
        # Every read goes through iter_content (content, text, json(), iter_lines()).
        response.iter_content = self  # type: ignore[method-assign]

    def __call__(self, chunk_size: int | None = 1, decode_unicode: bool = False) -> Iterator[Any]:
        response, limit, call, request = self.response, self.limit, self.call, self.request
        size = 0
        failure: BaseException | None = None
        try:
            for chunk in self.read(chunk_size, decode_unicode):
                size += len(chunk)
                if limit is not None and size > limit:
                    mark_consumed(response)
                    response.close()
                    raise _too_large(limit, response, call, request)
                yield chunk
        except errors.APIError:
            raise
        except rexc.RequestException as exc:
            failure = _typed(exc, call, request)
            if isinstance(exc, (rexc.ChunkedEncodingError, rexc.ConnectionError)):
                call.broken_after_hooks = _BrokenAfterHooks(failure, exc, self.chain, self.attempts)
        if call.cut_off():
            # As in _read: whatever the read returned after the watchdog shut the socket is not the answer.
            response.close()
            call.broken_after_hooks = None
            failure = _deadline_error(call, request, "the deadline ran out while reading the body")
        if failure is not None:
            raise failure  # outside the except block: no __context__ holding urllib3's raw message
        response.__dict__.pop("iter_content", None)  # read: the class's own method serves what is cached
        for done in self.after_read:
            done()


def _too_large(
    limit: int, response: requests.Response, call: CallState, request: requests.PreparedRequest
) -> errors.MalformedResponseError:
    return errors.MalformedResponseError(
        f"the decoded body passed max_response_size ({limit} bytes); nothing more was read",
        code="body_too_large",
        details={"limit": limit},
        response=response,
        **_context(call, request),
    )


def _next_after_broken_body(
    policy: Any,
    call: CallState,
    request: requests.PreparedRequest,
    broken: rexc.RequestException,
    first_break: rexc.RequestException,
) -> None:
    """Count a body that broke off on the call's retry chain and sleep before the next attempt, or raise
    the typed twin of *first_break* when the chain (or the body) allows no other attempt."""
    chain = call.retries if call.retries is not None else policy
    cause = (
        broken.args[0]
        if broken.args and isinstance(broken.args[0], Exception)
        else ProtocolError(str(broken))
    )
    retry: Retry | None = None
    if isinstance(chain, Retry) and call.replayable:
        try:
            retry = call_aware(chain).increment(request.method, request.url, error=cause)
        except (MaxRetryError, ProtocolError, ReadTimeoutError, SSLError, OSError):
            retry = None
    if retry is None:
        raise _typed(first_break, call, request)
    retry.sleep()
    body: Any = request.body
    if body is not None and not isinstance(body, (bytes, str)):
        rewind_body(request)  # to where requests found it, as before a redirect
    call.resume = retry


def _replayable(request: requests.PreparedRequest) -> bool:
    """True when the body can be sent again: none, bytes or text, or a stream requests found seekable."""
    body: Any = request.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    # requests records tell() of a file-like body at prepare time (utils.rewind_body's rule); a generator
    # has no position, and a pipe's tell() fails (recorded as a non-int marker).
    return isinstance(body_position(request), int)


def _is_timeout(value: Any) -> bool:
    return isinstance(value, (int, float, tuple, Timeout)) and not isinstance(value, bool)


# -- errors ----------------------------------------------------------------------------------------


def _context(call: CallState, request: requests.PreparedRequest) -> dict[str, Any]:
    return {
        "request": request,
        "attempts": call.attempts,
        "elapsed": call.elapsed(),
        "status": call.last_status,
    }


def _deadline_error(
    call: CallState, request: requests.PreparedRequest, what: str
) -> errors.DeadlineExceededError:
    return errors.DeadlineExceededError(what, **_context(call, request))


def _typed(
    exc: rexc.RequestException, call: CallState, request: requests.PreparedRequest
) -> rexc.RequestException:
    """The typed twin of *exc*, shaped as requests' own (the urllib3 exception first, its URLs redacted).

    Only requests' and urllib3's own classes are translated: a subclass an adapter or a mock raises
    (``requests_mock``'s ``exc=``, a ``responses`` body) is the caller's, and reaches them as the same
    object; so do ours and those that signal programming errors.
    """
    if isinstance(exc, errors.APIError) or type(exc).__module__ not in _TRANSLATED_MODULES:
        return exc
    cause = _innermost(exc)
    ctx = _context(call, request)
    first = errors.redacted(exc.args[0]) if exc.args else None
    args = (first,) if first is not None else ()
    if call.deadline_passed(_DEADLINE_SLACK):
        detail = _describe(cause)
        error: rexc.RequestException = errors.DeadlineExceededError(f"the deadline ran out: {detail}", **ctx)
        error.__cause__ = errors.redacted(cause)
        return error
    if isinstance(exc, rexc.ConnectionError) and isinstance(cause, ReadTimeoutError):
        # Retries exhausted on read timeouts arrive wrapped in MaxRetryError; a stall mid-body
        # arrives bare, from requests' iter_content.
        mid_body = not isinstance(exc.args[0], MaxRetryError)
        cls = errors.StalledBodyError if mid_body else errors.APIReadTimeout
        return cls(*args, **ctx)
    for theirs, ours in _TWINS:
        if isinstance(exc, theirs):
            return ours(*args, **ctx)
    return exc


# Where the exception classes live that become typed errors (exact classes, not their subclasses).
_TRANSLATED_MODULES = frozenset({rexc.RequestException.__module__, MaxRetryError.__module__})

# requests' exception -> our twin, most specific first (ConnectTimeout is also a ConnectionError ...).
_TWINS: tuple[tuple[type[rexc.RequestException], type[errors.APIError]], ...] = (
    (rexc.ConnectTimeout, errors.APIConnectTimeout),
    (rexc.ReadTimeout, errors.APIReadTimeout),
    (rexc.RetryError, errors.RetryExhaustedError),
    (rexc.ChunkedEncodingError, errors.IncompleteBodyError),
    (rexc.SSLError, errors.APISSLError),
    (rexc.ProxyError, errors.APIProxyError),
    (rexc.ConnectionError, errors.APIConnectionError),
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
