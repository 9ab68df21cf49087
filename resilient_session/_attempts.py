"""The attempt loop: one hop of a call through an adapter, sent one attempt at a time.

This is the synchronous driver of :mod:`resilient_session._decide`: it sends an attempt with urllib3's
own retries off (the deadline-aware pools of :mod:`resilient_session._pools` switch them off; under
``responses`` the mock is handed the same single-attempt ``Retry``), reads the body, asks the decision
functions what the outcome means, asks the retry gates (budget, breaker), and sleeps the wait. Around the
loop, :func:`guarded_send` holds the circuit breaker's permit, the bulkhead slot and the retry budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import requests
from requests import exceptions as rexc
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.utils import rewind_body
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError, ResponseError
from urllib3.util import Timeout
from urllib3.util.retry import Retry

from . import _decide, errors
from ._call import Attempt, CallState, RetryGate, carried, current_call, enter, leave
from ._compat.requests import body_position, mark_consumed
from ._compat.urllib3 import timeout_parts
from ._failures import as_requests_error, deadline_error, too_large, typed
from ._hosts import host_key
from ._quota import GATE_KEY, current_gate, open_gate, run_gate_steps
from ._response import read_content
from .normalization.body import Overflow, read_bounded
from .policies.breaker import CircuitBreaker
from .policies.budget import RetryBudget
from .policies.bulkhead import Bulkhead
from .stores.base import OpSteps

__all__ = ["DEFAULT_TIMEOUT", "TimeoutArg", "guarded_send", "may_go", "may_go_steps", "policies"]

log = logging.getLogger("resilient_session")

#: (connect, read) seconds: connect a little over a multiple of 3 s (TCP's SYN retransmit), read 30 s.
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 30.0)

TimeoutArg = float | tuple[float | None, float | None] | Timeout | None

Send = Callable[..., requests.Response]


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

    A :class:`~resilient_session.ResilientAdapter` sends through here; so does any other adapter a
    :class:`~resilient_session.ResilientSession` has mounted (see ``docs/adapters.md``).
    """
    # Handed over with the request by the session; the call context only for an adapter called directly
    # while a call is in progress (a response hook's auth handler re-sending through response.connection).
    call = carried(request) or current_call()
    if call is None:
        call = CallState.begin(request.method, request.url)
        token = enter(call)
        try:
            return _guarded(adapter, send, call, request, stream, timeout, verify, cert, proxies)
        finally:
            leave(token)
    call.sending = False  # the session's adapter look-up for this send is over
    return _guarded(adapter, send, call, request, stream, timeout, verify, cert, proxies)


def policies(
    adapter: BaseAdapter, session: object | None
) -> tuple[CircuitBreaker | None, RetryBudget | None, Bulkhead | None]:
    """The breaker, budget and bulkhead in force for a call through *adapter* from *session*."""
    return (
        inherit(getattr(adapter, "breaker", None), session, "breaker"),
        inherit(getattr(adapter, "budget", None), session, "budget"),
        inherit(getattr(adapter, "bulkhead", None), session, "bulkhead"),
    )


def inherit(own: Any, session: object | None, name: str) -> Any:
    """An adapter's own policy, ``None`` for ``False``, else the session's."""
    if own is False:
        return None
    return own if own is not None else getattr(session, name, None)


def _guarded(
    adapter: BaseAdapter, send: Send, call: CallState, request: requests.PreparedRequest, *args: Any
) -> requests.Response:
    """The rate limit's slot (waited for, or refused at once), then the other policies around one send."""
    policy = inherit(getattr(adapter, "rate_limit", None), call.owner, "rate_limit")
    # open_gate() without a policy drops a gate an earlier hop of the call kept; none kept, none to drop.
    quota = None if policy is None and GATE_KEY not in call.extras else open_gate(policy, call, request)
    if quota is None:
        return _protected(adapter, send, call, request, *args)
    response = _protected(adapter, send, call, request, *args)
    quota.answered(response.headers, response.status_code)
    return response


def _protected(
    adapter: BaseAdapter, send: Send, call: CallState, request: requests.PreparedRequest, *args: Any
) -> requests.Response:
    """Circuit breaker, bulkhead and retry budget around one send; a refused call opens no socket."""
    owner = call.owner
    # policies(adapter, owner), spelled out: this runs on every send.
    breaker = getattr(adapter, "breaker", None)
    breaker = (
        None if breaker is False else breaker if breaker is not None else getattr(owner, "breaker", None)
    )
    budget = getattr(adapter, "budget", None)
    budget = None if budget is False else budget if budget is not None else getattr(owner, "budget", None)
    bulkhead = getattr(adapter, "bulkhead", None)
    bulkhead = (
        None if bulkhead is False else bulkhead if bulkhead is not None else getattr(owner, "bulkhead", None)
    )
    if breaker is None and budget is None and bulkhead is None:
        return _attempts(adapter, send, call, request, *args)
    host = host_key(request.url or "")  # each policy's key_for(), parsing the URL once
    permit = None
    if breaker is not None:
        base_url = getattr(owner, "base_url", None)  # the default route groups start below it
        permit = breaker.acquire(host if breaker.name is None else breaker.name, request, base_url=base_url)
    if permit is not None and call.observer is not None:
        call.observer.circuit(call, "half_open" if permit.probe else "closed")
    compartment = None if bulkhead is None else host if bulkhead.name is None else bulkhead.name
    budget_gate = None if budget is None else budget.gate(host if budget.name is None else budget.name)
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
    """Send attempts until one answers for good; every failure leaves as a typed error with no secret in
    its chain, and one hop never sends more than ``total + 1`` requests."""
    if timeout is None:
        own = getattr(adapter, "timeout", None)
        timeout = own if own is not None and _is_timeout(own) else call.default_timeout or DEFAULT_TIMEOUT
    mocked = _responses_mock(send)
    policy = getattr(adapter, "max_retries", None)
    if not mocked and call.retry_standin is not None:
        # responses applies the adapter's own max_retries, which install() leaves as it is: the owner's
        # policy stands in on the wire only, so the caller's mocked tests see what they always saw.
        policy = stand_in(call, policy)
    # The adapter's policy, read as data; a body that cannot be sent twice is sent once.
    chain = _decide.with_idempotency_key(policy, request.headers) if isinstance(policy, Retry) else None
    body: Any = request.body
    if (
        chain is not None
        and body is not None
        and not isinstance(body, (bytes, str))
        and not _replayable(request)
    ):
        chain = None
    # requests' own send turns a (connect, read) pair into a urllib3 Timeout on every attempt; handed
    # the equal Timeout, it uses it as is (only an add_headers of a subclass would see the difference).
    as_timeout = (
        not mocked
        and getattr(send, "__func__", None) is _REQUESTS_SEND
        and getattr(type(adapter), "add_headers", None) is _REQUESTS_ADD_HEADERS
    )
    call.attempts = 1
    own_deadline = getattr(adapter, "deadline", None)
    if own_deadline is not None:
        call.tighten_deadline(own_deadline)
    method = request.method or call.method
    # The first body that broke off: if the attempts after it fail too, the call raises this, the
    # exception plain requests raises here (ChunkedEncodingError ...), not the last attempt's.
    first_break: rexc.RequestException | None = None
    call.hop = (method.upper(), request.url or call.raw_url)
    carried = call.broken_after_hooks
    if isinstance(carried, BrokenAfterHooks) and carried.resend:
        # The session sends this hop again: its body broke off after the hooks. Same chain, same count.
        call.broken_after_hooks = None
        call.attempts, chain = carried.attempts, carried.chain
        first_break = carried.broken
        chain = _after_broken_body(chain, call, request, carried.broken, first_break, mocked)
    while True:
        if call.deadline_passed():
            raise deadline_error(call, request, "the deadline ran out before an attempt")
        if call.observer is not None:
            call.observer.attempt(call, request.headers, on_wire=False)
        attempt = call.attempt = Attempt()
        failure: rexc.RequestException | None = None
        # Each attempt waits no longer than the time the call has left.
        bounded = timeout if call.deadline_at is None else clamp(timeout, call.remaining() or 0.0)
        if as_timeout and type(bounded) is tuple:
            bounded = _timeout_of(bounded)
        try:
            if mocked:
                # responses applies the Retry it is handed itself: it gets the single-attempt one.
                attempt.single = True
                response = send(
                    request,
                    stream=stream,
                    timeout=bounded,
                    verify=verify,
                    cert=cert,
                    proxies=proxies,
                    retries=_decide.SINGLE_ATTEMPT,
                )
            else:
                response = send(
                    request, stream=stream, timeout=bounded, verify=verify, cert=cert, proxies=proxies
                )
        except rexc.RequestException as exc:
            failure = exc
        finally:
            call.attempt = None
        if failure is not None:
            # Outside the except block: no __context__ holding urllib3's raw message.
            chain = _after_failed_attempt(chain, call, request, attempt, failure, first_break, mocked)
            continue
        if call.expired:  # the watchdog ended the call: what the read returned since is suspect
            response.close()
            raise deadline_error(call, request, "the deadline ran out while waiting for the response")
        call.last_status = response.status_code
        if call.observer is not None:
            call.observer.answered(call, response.status_code)
        if chain is not None and attempt.single:
            retried = _after_answer(chain, call, request, attempt, response, mocked)
            if retried is not None:
                chain = retried
                continue
        response.attempts = call.attempts  # type: ignore[attr-defined]
        if stream or response.is_redirect:
            # A redirect hop's body is read by requests itself, which ignores its errors.
            return response
        limit = getattr(call.owner, "max_response_size", None)
        hooks = getattr(request, "hooks", None)
        if isinstance(hooks, dict) and hooks.get("response"):
            # requests hands a response to its hooks with the body unread, and auth handlers rely on it
            # (requests-ntlm reads the live socket for channel binding). Whoever reads it (a hook, or
            # requests after them) reads it as below; a break mid-body is sent again by the session.
            _GuardedRead(response, limit, call, request, chain)
            return response
        # Read inside the retry scope, so a break mid-body is retried.
        broken = _read(response, limit, call, request)
        if broken is None:
            return response
        response.close()
        first_break = first_break or broken
        chain = _after_broken_body(chain, call, request, broken, first_break, mocked)


_REQUESTS_SEND = HTTPAdapter.send
_REQUESTS_ADD_HEADERS = HTTPAdapter.add_headers
# Timeouts built from (connect, read) pairs. Keyed with the types too: Timeout(read=30) and
# Timeout(read=30.0) say "30" and "30.0" in urllib3's messages, as requests' own would.
_timeouts: dict[tuple[Any, ...], Any] = {}


def _timeout_of(pair: tuple[Any, ...]) -> Any:
    """``TimeoutSauce(connect=, read=)`` of *pair*, as requests' send builds it, remembered; *pair* itself
    when requests would refuse it (requests' send then raises its own error)."""
    key = (pair, *map(type, pair))
    try:
        found = _timeouts.get(key)
    except TypeError:  # an unhashable part: requests' send refuses it with its own error
        return pair
    if found is None:
        if len(pair) != 2:
            return pair
        try:
            found = Timeout(connect=pair[0], read=pair[1])
        except (ValueError, TypeError):
            return pair
        if len(_timeouts) >= 64:
            _timeouts.clear()
        _timeouts[key] = found
    return found


def _after_answer(
    chain: Retry,
    call: CallState,
    request: requests.PreparedRequest,
    attempt: Attempt,
    response: requests.Response,
    mocked: bool,
) -> Retry | None:
    """The next chain when *response*'s status is retried (its connection drained, the wait slept);
    ``None`` when *response* stands. Raises the typed ``RetryError`` of ``raise_on_status``."""
    raw = response.raw
    if raw is None or not hasattr(raw, "status"):
        return None
    method = request.method or call.method
    url = attempt.url or request.url or call.raw_url
    decision = _decide.after_status(chain, method, url, raw, attempt.pool)
    if decision is None:
        return None
    quota = current_gate(call)
    if quota is not None:
        quota.answered(raw.headers, raw.status)
    wait = may_go(decision, call, raw.status) if isinstance(decision, _decide.Retrying) else None
    if isinstance(decision, _decide.Retrying) and wait is not None:
        _drain(raw)
        _wait(wait, call, mocked)
        _rewind(request)
        return decision.chain
    if chain.raise_on_status:
        _drain(raw)
        raised = (
            decision.raised
            if isinstance(decision, _decide.Stop) and isinstance(decision.raised, MaxRetryError)
            else MaxRetryError(attempt.pool, url, ResponseError(decision.reason))
        )
        error = typed(rexc.RetryError(raised, request=request), call, request)
        raise error
    return None


def _after_failed_attempt(
    chain: Retry | None,
    call: CallState,
    request: requests.PreparedRequest,
    attempt: Attempt,
    failure: rexc.RequestException,
    first_break: rexc.RequestException | None,
    mocked: bool,
) -> Retry:
    """The next chain after *failure* (the wait slept), or raise the call's typed error."""
    inner = _urllib3_failure(failure)
    if isinstance(inner, MaxRetryError):
        error, pool, url = inner.reason, inner.pool, inner.url
    elif isinstance(inner, (ProtocolError, ReadTimeoutError)):
        error, pool, url = inner, attempt.pool, attempt.url  # a read error urllib3 re-raised as is
    else:
        error, pool, url = None, None, None
    if chain is None or not attempt.single or not isinstance(error, Exception):
        # Not a failure urllib3's retry loop counts (or the adapter applied its own): it stands.
        raise typed(first_break or failure, call, request)
    method = request.method or call.method
    url = url or attempt.url or request.url or call.raw_url
    decision = _decide.after_error(chain, method, url, error, pool)
    wait = may_go(decision, call, None) if isinstance(decision, _decide.Retrying) else None
    if isinstance(decision, _decide.Retrying) and wait is not None:
        _wait(wait, call, mocked)
        _rewind(request)
        return decision.chain
    if first_break is not None:
        raise typed(first_break, call, request)
    # The deadline or a gate said no: what urllib3 raises when the retries ran out (it takes pool=None).
    exhausted = MaxRetryError(pool, url, error)  # type: ignore[arg-type]
    raised = decision.raised if isinstance(decision, _decide.Stop) else exhausted
    raise typed(_as_raised(raised, inner, failure, request), call, request)


def _urllib3_failure(failure: BaseException) -> Any:
    """The urllib3 error requests wrapped in *failure* (``ConnectionError(MaxRetryError(...))`` ...); an
    adapter that raises its own exception from requests' (``raise Down(...) from exc``) is looked through."""
    seen: BaseException | None = failure
    for _ in range(3):
        if seen is None:
            return None
        first = seen.args[0] if seen.args else None
        if isinstance(first, (MaxRetryError, ProtocolError, ReadTimeoutError)):
            return first
        seen = seen.__cause__ or seen.__context__
    return None


def _as_raised(
    raised: BaseException | None,
    inner: Any,
    failure: rexc.RequestException,
    request: requests.PreparedRequest,
) -> BaseException:
    """What requests raises when urllib3's ``urlopen`` raises *raised*: the attempt's own exception when
    it has that very shape (the error itself, or a ``MaxRetryError`` for the same reason), else
    requests' translation."""
    if raised is None or raised is inner or type(failure).__module__ != rexc.__name__:
        return failure  # the same shape, or an adapter's own exception: the caller's, as it was raised
    if (
        isinstance(raised, MaxRetryError)
        and isinstance(inner, MaxRetryError)
        and raised.reason is inner.reason
    ):
        return failure
    return as_requests_error(raised, request)


def _after_broken_body(
    chain: Retry | None,
    call: CallState,
    request: requests.PreparedRequest,
    broken: rexc.RequestException,
    first_break: rexc.RequestException,
    mocked: bool,
) -> Retry:
    """Count a body that broke off on the chain and sleep before the next attempt, or raise the typed
    twin of *first_break* when the chain (or the body) allows no other attempt."""
    if chain is None:
        raise typed(first_break, call, request)
    method = request.method or call.method
    decision = _decide.after_error(
        chain, method, request.url or call.raw_url, _decide.broken_body_cause(broken)
    )
    wait = may_go(decision, call, None) if isinstance(decision, _decide.Retrying) else None
    if not isinstance(decision, _decide.Retrying) or wait is None:
        raise typed(first_break, call, request)
    _wait(wait, call, mocked)
    _rewind(request)
    return decision.chain


def may_go(decision: _decide.Retrying, call: CallState, status: int | None) -> float | None:
    """The wait before the retry *decision*, when the deadline, the retry gates and the rate limit let it
    go (counted then); ``None`` when they do not."""
    return run_gate_steps(call, may_go_steps(decision, call, status))


def may_go_steps(decision: _decide.Retrying, call: CallState, status: int | None) -> OpSteps[float | None]:
    """:func:`may_go` as steps: the rate limit's store op for the retry's slot is yielded (an async
    caller awaits it); the retry gates are asked synchronously (an async caller pays the retry budget
    ahead, see :meth:`~resilient_session.policies.budget.BudgetGate.pay_steps`)."""
    remaining = call.remaining()
    if not _decide.allowed_by_deadline(decision.wait, remaining, call.expired):
        log.debug(
            "not retrying %s %s: the wait (%.2fs) would pass the deadline (%.2fs left)",
            call.method,
            call.url,
            decision.wait,
            max(remaining or 0.0, 0.0),
            extra={"method": call.method, "url": call.url, "reason": decision.reason, "outcome": "deadline"},
        )
        return None
    if call.retry_gates and not call.may_retry(decision.reason):
        return None
    wait = decision.wait
    quota = current_gate(call)
    if quota is not None:
        # The retry takes its slot in the rate limit too; none in time ends the call as above.
        slot = yield from quota.before_retry_steps(call, wait)
        if slot is None:
            return None
        wait = slot
    call.attempts += 1
    if call.observer is not None:
        call.observer.retry(call, decision.reason, wait, status)
    # WARNING, as urllib3 logs its own retries: a retry is worth seeing once logging is configured,
    # and the one INFO line per call (observability) stays one.
    log.warning(
        "retrying %s %s (attempt %d, reason: %s, sleeping %.2fs)",
        call.method,
        call.url,
        call.attempts,
        decision.reason,
        wait,
        extra={
            "method": call.method,
            "url": call.url,
            "attempt": call.attempts,
            "reason": decision.reason,
            "sleep": wait,
        },
    )
    return wait


def stand_in(call: CallState, retries: Any) -> Any:
    """*retries*, or the call's stand-in policy when *retries* is an untouched default (see CallState)."""
    standin = call.retry_standin
    if standin is not None and untouched(retries):
        return standin
    return retries


def untouched(retries: Any) -> bool:
    """True when *retries* is what ``HTTPAdapter()`` makes when given no ``max_retries``."""
    default = _default_max_retries()
    # requests builds a fresh Retry per adapter: only its type and every option can say "untouched".
    return type(retries) is type(default) and vars(retries) == vars(default)


@cache
def _default_max_retries() -> Retry:
    # What this version of requests gives an adapter built with no max_retries (or max_retries=0).
    adapter = HTTPAdapter()
    adapter.close()
    return adapter.max_retries


def _wait(seconds: float, call: CallState, mocked: bool) -> None:
    """Sleep *seconds*, never past the deadline; under ``responses`` nothing is slept, as ``responses``
    itself never sleeps between the retries it applies."""
    if mocked:
        return
    remaining = call.remaining()
    if remaining is not None:
        seconds = min(seconds, max(remaining, 0.0))
    if seconds > 0:
        time.sleep(seconds)


def _rewind(request: requests.PreparedRequest) -> None:
    """Put a file body back where requests found it before the next attempt, as urllib3 does before its
    own retries and requests before a redirect."""
    body: Any = request.body
    if body is not None and not isinstance(body, (bytes, str)):
        rewind_body(request)


def _drain(raw: Any) -> None:
    """Read and drop the rest of a retried answer, so its connection goes back to the pool."""
    drain = getattr(raw, "drain_conn", None)
    if drain is not None:
        drain()
    release = getattr(raw, "release_conn", None)
    if release is not None:
        release()


def _responses_mock(send: Send) -> bool:
    """True when *send* is ``responses``' stand-in for ``HTTPAdapter.send``, which applies the ``Retry``
    it is handed (its ``retries=`` keyword, else ``adapter.max_retries``) itself."""
    function = getattr(send, "__func__", send)
    return getattr(function, "__module__", None) == "responses"


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
            read_content(response)  # response.content, as Session.send would read it
        elif isinstance(read_bounded(response, limit), Overflow):
            unusable = too_large(limit, response, call, request)
    except (rexc.ChunkedEncodingError, rexc.ConnectionError) as exc:
        broken = exc
    except rexc.RequestException as exc:
        unusable = typed(exc, call, request)
    if call.expired:  # cut_off(): the watchdog ended the call
        # The watchdog shut the socket: whatever the read returned (even a body that merely looks
        # complete, with no Content-Length) is not the answer.
        response.close()
        raise deadline_error(call, request, "the deadline ran out while reading the body")
    if unusable is not None:
        raise unusable
    return broken


@dataclass
class BrokenAfterHooks:
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
    that breaks off counted on the retry chain (a session sends the hop again, see ``BrokenAfterHooks``).
    """

    __slots__ = ("after_read", "attempts", "call", "chain", "limit", "read", "request", "response")

    def __init__(
        self,
        response: requests.Response,
        limit: int | None,
        call: CallState,
        request: requests.PreparedRequest,
        chain: Retry | None,
    ) -> None:
        self.response, self.limit, self.call, self.request = response, limit, call, request
        self.read = response.iter_content
        self.chain, self.attempts = chain, call.attempts
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
                    raise too_large(limit, response, call, request)
                yield chunk
        except errors.APIError:
            raise
        except rexc.RequestException as exc:
            failure = typed(exc, call, request)
            if isinstance(exc, (rexc.ChunkedEncodingError, rexc.ConnectionError)):
                call.broken_after_hooks = BrokenAfterHooks(failure, exc, self.chain, self.attempts)
        if call.cut_off():
            # As in _read: whatever the read returned after the watchdog shut the socket is not the answer.
            response.close()
            call.broken_after_hooks = None
            failure = deadline_error(call, request, "the deadline ran out while reading the body")
        if failure is not None:
            raise failure  # outside the except block: no __context__ holding urllib3's raw message
        response.__dict__.pop("iter_content", None)  # read: the class's own method serves what is cached
        for done in self.after_read:
            done()


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


def clamp(timeout: Any, remaining: float) -> Timeout:
    """*timeout* with no part longer than *remaining* seconds."""
    if isinstance(timeout, Timeout):
        connect, read = timeout_parts(timeout)
    elif isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = timeout

    def cap(value: Any) -> float:
        return min(value, remaining) if isinstance(value, (int, float)) else remaining

    return Timeout(connect=cap(connect), read=cap(read), total=remaining)
