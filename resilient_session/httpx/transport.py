"""httpx transports with the session's protection: retries, deadline, breaker, budget, bulkhead, typed errors.

:class:`AsyncResilientTransport` wraps an ``httpx.AsyncBaseTransport`` (``httpx.AsyncHTTPTransport`` by
default). Each request it handles is one hop of a call: the breaker is asked, a bulkhead slot taken, the
request sent until the retry policy stops, the body read (so a body broken off mid-way is retried, as
the requests adapter does), and every failure leaves as an error that is both ours and httpx's (see
:mod:`resilient_session.httpx.errors`). The call's deadline ends it by cancellation: no thread waits.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple, TypeVar, cast

import anyio
import anyio.to_thread
import httpx
import requests
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

from .. import _decide, _fork
from .._attempts import may_go_steps
from .._call import CallState, current_call, enter, leave
from .._compat.httpx import set_read_body
from .._decide import reason_for, with_idempotency_key
from .._hosts import host_key
from .._options import check_session_option, policy_option
from .._quota import QuotaGate, SlotSteps, current_gate, gate_for, run_gate_steps
from ..errors import BulkheadFullError, CircuitOpenError, QuotaExceededError
from ..normalization.view import DEFAULT_NORMALIZER, Normalizer
from ..policies.breaker import CircuitBreaker, Permit
from ..policies.budget import BudgetGate, RetryBudget
from ..policies.bulkhead import Bulkhead
from ..policies.ratelimit import RateLimit
from ..retry import as_retry_policy
from ..stores.base import AtomicOp, OpSteps, Result, StateStore, arun_steps, run_steps
from ..stores.memory import MemoryStore
from . import _core, _deadline
from .errors import HTTPXResponseTooLarge, HTTPXRetryExhausted, context
from .response import as_resilient

__all__ = ["AsyncResilientTransport", "ResilientTransport", "TransportPolicies", "attempts"]

_T = TypeVar("_T")

#: Seconds between two looks at a full bulkhead by a waiting task (sync callers wait on its condition).
_BULKHEAD_POLL = 0.005


class TransportPolicies:
    """The options both transports take, checked as the requests session checks them.

    :param retry: A :class:`~resilient_session.RetryPolicy`, a urllib3 ``Retry``, an int, ``False`` (no
        retries) or ``None`` (the default ``RetryPolicy()``).
    :param deadline: Seconds for each call, attempts, backoff and body included; a client's (or the
        call's) deadline still applies, whichever ends first.
    :param breaker: A :class:`~resilient_session.CircuitBreaker`; ``True`` (default) the default one,
        ``False`` none. With no ``store``, it is the process-wide store: a requests session and an
        httpx client calling the same origin (or the same integration) share one circuit.
    :param budget: A :class:`~resilient_session.RetryBudget`, ``True`` (default) or ``False``.
    :param bulkhead: A :class:`~resilient_session.Bulkhead`, ``True`` or ``False`` (default).
    :param rate_limit: A :class:`~resilient_session.policies.RateLimit`, ``True`` (the default one) or
        ``False``/``None`` (default, none). Its schedule lives in its store: a requests session and an
        httpx client of the same integration draw from one quota.
    :param max_response_size: Bytes a body read by the transport may have after decoding; past them
        the connection is closed and :class:`~resilient_session.httpx.HTTPXResponseTooLarge` raised.
        ``None`` (default): no limit. A streamed body is the caller's to bound.
    :param base_url: Where the default route groups of the breaker start (a client sets its own).
    :param normalizer: Builds each response's ``normalized`` view.
    """

    def __init__(
        self,
        *,
        retry: Retry | int | bool | None = None,
        deadline: float | None = None,
        breaker: CircuitBreaker | bool | None = True,
        budget: RetryBudget | bool | None = True,
        bulkhead: Bulkhead | bool | None = False,
        rate_limit: RateLimit | bool | None = None,
        max_response_size: int | None = None,
        base_url: str | None = None,
        normalizer: Normalizer = DEFAULT_NORMALIZER,
    ) -> None:
        check_session_option("deadline", deadline)
        size = max_response_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValueError(f"max_response_size must be a number of bytes or None, not {size!r}")
        self.retry: Retry = as_retry_policy(retry)
        self.deadline = None if deadline is None else float(deadline)
        self.breaker: CircuitBreaker | None = policy_option(breaker, CircuitBreaker, "breaker")
        self.budget: RetryBudget | None = policy_option(budget, RetryBudget, "budget")
        self.bulkhead: Bulkhead | None = policy_option(bulkhead, Bulkhead, "bulkhead")
        self.rate_limit: RateLimit | None = policy_option(rate_limit, RateLimit, "rate_limit")
        self.max_response_size = max_response_size
        self.base_url = base_url
        self.normalizer = normalizer
        stores = [p.store for p in (self.breaker, self.budget, self.rate_limit) if p is not None]
        #: Every store is this process's memory: asking the policies costs microseconds and no I/O.
        self.local = all(isinstance(store, MemoryStore) for store in stores)
        #: Every store op of the async transport can be awaited (memory, or a store with async ops
        #: such as RedisStore's): no worker thread asks the policies.
        self.awaitable = all(_awaitable(store) for store in stores)


def _awaitable(store: StateStore) -> bool:
    return isinstance(store, MemoryStore) or type(store).arun is not StateStore.arun


def _scope(name: str | None, host: str) -> str:
    return host if name is None else name


class _RequestLine(NamedTuple):
    method: str
    url: str


class _Hop:
    """One request through a transport: the policies in force and what they handed out."""

    __slots__ = (
        "breaker",
        "budget_gate",
        "bulkhead",
        "compartment",
        "gates",
        "holding",
        "host",
        "permit",
        "settled",
    )

    def __init__(
        self,
        policies: TransportPolicies,
        call: CallState,
        request: httpx.Request,
        permit: Permit | None = None,
    ) -> None:
        url = str(request.url)
        self.host = host_key(url)
        self.breaker = policies.breaker
        self.bulkhead = policies.bulkhead
        self.permit: Permit | None = None
        self.compartment: str | None = None
        self.budget_gate: BudgetGate | None = None
        self.gates: list[Any] = []
        #: A bulkhead slot is held; the hop's outcome was told and what it held given back.
        self.holding = self.settled = False
        if self.breaker is not None:
            if permit is None:
                permit = run_steps(self.breaker.store, _acquire_steps(policies, self.breaker, request))
            self.permit = permit
            self.gates.append(self.breaker.gate(self.permit))
            if call.observer is not None:
                call.observer.circuit(call, "half_open" if self.permit.probe else "closed")
        if policies.budget is not None:
            self.budget_gate = policies.budget.gate(_scope(policies.budget.name, self.host))
            self.gates.append(self.budget_gate)
        if self.bulkhead is not None:
            self.compartment = _scope(self.bulkhead.name, self.host)
        call.retry_gates.extend(self.gates)

    @classmethod
    def begin(
        cls,
        policies: TransportPolicies,
        call: CallState,
        request: httpx.Request,
        permit: Permit | None = None,
    ) -> _Hop:
        """The hop's policies asked: the circuit's leave (or its typed refusal), the retry gates set."""
        try:
            return cls(policies, call, request, permit)
        except CircuitOpenError as exc:
            error = _core.typed(exc, call, request)
        try:
            raise error
        finally:
            del error  # no reference cycle through this frame on the error's traceback

    @classmethod
    async def abegin(cls, policies: TransportPolicies, call: CallState, request: httpx.Request) -> _Hop:
        """:meth:`begin` for a task: the circuit's store ops awaited, never a blocked event loop."""
        permit = None
        breaker = policies.breaker
        if breaker is not None and not isinstance(breaker.store, MemoryStore):
            try:
                permit = await arun_steps(breaker.store, _acquire_steps(policies, breaker, request))
            except CircuitOpenError as exc:
                error = _core.typed(exc, call, request)
                try:
                    raise error from None
                finally:
                    del error
        return cls.begin(policies, call, request, permit)

    async def arecord(
        self, *, response: httpx.Response | None = None, error: BaseException | None = None
    ) -> None:
        """:meth:`record` for a task: its store ops awaited."""
        if self.breaker is not None and self.permit is not None:
            steps = self.breaker.record_steps(
                self.permit, response=cast(requests.Response, response), error=error
            )
            await arun_steps(self.breaker.store, steps)
        if response is not None and self.budget_gate is not None and _counts_as_success(response):
            await arun_steps(self.budget_gate.budget.store, self.budget_gate.record_success_steps())

    def take_slot_now(self) -> bool:
        """Take a bulkhead slot if one is free; True when taken (or no bulkhead)."""
        if self.bulkhead is None or self.compartment is None:
            return True
        return self.bulkhead.slots.take(self.compartment, self.bulkhead.max_concurrent, 0.0) is None

    def give_back(self, call: CallState, holding: bool) -> None:
        for gate in self.gates:
            if gate in call.retry_gates:
                call.retry_gates.remove(gate)
        if holding and self.bulkhead is not None and self.compartment is not None:
            self.bulkhead.release(self.compartment)

    def record(self, *, response: httpx.Response | None = None, error: BaseException | None = None) -> None:
        if self.breaker is not None and self.permit is not None:
            self.breaker.record(self.permit, response=cast(requests.Response, response), error=error)
        if response is not None and self.budget_gate is not None and _counts_as_success(response):
            self.budget_gate.record_success()

    def bulkhead_full(self, waited: float) -> BulkheadFullError:
        assert self.bulkhead is not None
        return BulkheadFullError(
            f"{self.bulkhead.max_concurrent} calls to {self.compartment} already in flight; none finished "
            f"within {waited:.3f}s",
            host=self.compartment or self.host,
            max_concurrent=self.bulkhead.max_concurrent,
            waited=waited,
        )


def _acquire_steps(policies: TransportPolicies, breaker: CircuitBreaker, request: httpx.Request) -> Any:
    """The circuit's leave for *request* as store ops; ``acquire`` reads only the request's method and
    URL, as text (the route group)."""
    url = str(request.url)
    return breaker.acquire_steps(
        _scope(breaker.name, host_key(url)),
        cast(requests.PreparedRequest, _RequestLine(request.method, url)),
        base_url=policies.base_url,
    )


def _counts_as_success(response: httpx.Response) -> bool:
    """An answer that refunds the retry budget (neither a 5xx nor a 429)."""
    return response.status_code < 500 and response.status_code != 429


def begin(policies: TransportPolicies, request: httpx.Request) -> tuple[CallState, Any]:
    """The call *request* belongs to: a client's call in progress, or a new one (and its token)."""
    call = current_call()
    if call is not None and call.extras.get("httpx_client") is not None:
        # The client's call: its first hop, a redirect hop or the re-send after a 401.
        origin = host_key(str(request.url))
        first = call.extras.setdefault("origin", origin)
        if origin != first:
            _strip_credentials(call, request)
        call.sent = True
        call.raw_url = str(request.url)
        call.extras.pop("redacted_url", None)
        call.tighten_deadline(policies.deadline)
        return call, None
    outer = call
    call = CallState.begin(request.method, str(request.url), extras={"httpx_transport": True})
    call.tighten_deadline(policies.deadline)
    if outer is not None and outer.deadline_at is not None:
        call.tighten_deadline(outer.deadline_at - call.started)
    return call, enter(call)


def _strip_credentials(call: CallState, request: httpx.Request) -> None:
    """A redirect to another origin: drop the headers and query parameters our auth set (httpx itself
    drops only ``Authorization``; an API key header would otherwise follow the redirect)."""
    for name in call.extras.get("credential_headers", ()):
        request.headers.pop(name, None)
    keys = call.extras.get("credential_query", ())
    if keys and request.url.query:
        kept = [(k, v) for k, v in request.url.params.multi_items() if k not in keys]
        request.url = request.url.copy_with(params=kept)


# -- the decisions of one hop, shared by both transports ---------------------------------------------
#
# ``attempts()`` is a generator: it yields what to do next (send, sleep, read the body, close a response)
# and receives what happened; each transport runs the same generator with its own I/O (``await`` or not).


class Send(NamedTuple):
    """Send the request once; answer ``(response, None)`` or ``(None, httpx.TransportError)``."""


class Sleep(NamedTuple):
    """Wait this many seconds; answer ``None``."""

    seconds: float


class Read(NamedTuple):
    """Read the body of *response*; answer ``None`` or the ``httpx.TransportError`` it broke off with."""

    response: httpx.Response


class Close(NamedTuple):
    """Close *response* unread; answer ``None``."""

    response: httpx.Response


class Decide(NamedTuple):
    """Ask the retry policy (and through it the call's gates: retry budget, circuit, rate limit); answer
    the value ``decide()``'s steps return. Its steps yield the rate limit's store ops (what the answer
    taught, the retry's slot), which the async transport awaits; the retry budget's store it pays ahead
    through the store's async ops (the retry's *reason* sets its cost). A transport whose stores have
    no async ops runs the decision off the event loop."""

    decide: Callable[[], OpSteps[Next | None]]
    reason: str = ""


Step = Send | Sleep | Read | Close | Decide
Plan = Generator[Step, Any, httpx.Response]


def attempts(policies: TransportPolicies, call: CallState, request: httpx.Request) -> Plan:
    """The attempts of one hop: send until the retry policy stops, reading the body inside the loop
    (unless the call streams), and return the response or raise the typed error. The policy is read as
    data by the decisions the requests session takes (:mod:`resilient_session._decide`)."""
    method = request.method
    url = str(request.url)
    # A request carrying the policy's idempotency key header may retry its idempotency_key_methods too.
    retry = with_idempotency_key(policies.retry, request.headers)
    if not _core.replayable(request):
        # A body that cannot be sent twice: the first outcome is the call's, as plain requests sends.
        retry = retry.new(total=0, read=False, status_forcelist=frozenset())
    call.attempts = 1
    read_body = not call.extras.get("stream", False)
    first_break: BaseException | None = None
    timeouts = request.extensions.get("timeout")
    while True:
        if call.deadline_passed():
            raise _core.deadline_error(call, request, "the deadline ran out before an attempt")
        clamped = _core.clamped_timeouts(timeouts, call.remaining())
        if clamped is not None:
            request.extensions["timeout"] = clamped
        following: Next | None = None
        response, error = yield Send()
        if error is not None:
            failure = _core.typed(error, call, request)
            if failure is not error and not call.deadline_passed(_core.DEADLINE_SLACK):
                cause = _core.wire_cause(error, _core.HEADERS)
                following = yield Decide(
                    partial(_next, retry, method, url, call, error=cause), reason_for(None, cause)
                )
            if following is None:
                try:
                    raise failure
                finally:
                    # This frame is on the error's traceback: holding the error there would make a
                    # reference cycle per failed call, left to the cyclic collector's pauses.
                    del error, failure
            retry = following.chain
            yield Sleep(following.wait)
            continue
        call.last_status = response.status_code
        if retry.is_retry(method, response.status_code, "Retry-After" in response.headers):
            view = _core.retry_view(response)
            following = yield Decide(
                partial(_next, retry, method, url, call, response=view), reason_for(view, None)
            )
            if following is not None:
                yield Close(response)
                retry = following.chain
                yield Sleep(following.wait)
                continue
            if retry.raise_on_status and not call.deadline_passed():
                yield Close(response)
                raise _exhausted(call, request, response)
        resilient = as_resilient(response, attempts=call.attempts, normalizer=policies.normalizer)
        if not read_body:
            return resilient
        broken_by = yield Read(response)
        if broken_by is None:
            return resilient
        broken = _core.typed(broken_by, call, request, _core.BODY)
        if broken is not broken_by and not call.deadline_passed(_core.DEADLINE_SLACK):
            first_break = first_break or broken
            cause = _core.wire_cause(broken_by, _core.BODY)
            following = yield Decide(
                partial(_next, retry, method, url, call, error=cause), reason_for(None, cause)
            )
        if following is None:
            try:
                raise first_break or broken
            finally:
                del first_break, broken, broken_by  # no reference cycle (as above)
        retry = following.chain
        yield Sleep(following.wait)


class Next(NamedTuple):
    """Another attempt goes: with the policy's state *chain*, after *wait* seconds."""

    chain: Retry
    wait: float


def _next(
    chain: Retry,
    method: str,
    url: str,
    call: CallState,
    *,
    response: HTTPResponse | None = None,
    error: Exception | None = None,
) -> OpSteps[Next | None]:
    """The decision after an attempt, as the requests session takes it: the policy's (``_decide``),
    then the deadline, the retry gates (budget, circuit) and the rate limit (``may_go``, which counts
    and logs the retry); ``None`` to stop (retries used up, not retryable, or refused). As steps: the
    rate limit's store ops are yielded (see :func:`~resilient_session._quota.run_gate_steps`)."""
    decision: _decide.Retrying | _decide.Stop | None
    if response is not None:
        decision = _decide.after_status(chain, method, url, response)
        quota = current_gate(call)
        if decision is not None and quota is not None:
            yield from quota.answered_steps(response.headers, response.status)
    else:
        assert error is not None
        decision = _decide.after_error(chain, method, url, error)
    if not isinstance(decision, _decide.Retrying):
        return None
    wait = yield from may_go_steps(decision, call, response.status if response is not None else None)
    if wait is None:
        return None
    remaining = call.remaining()
    return Next(decision.chain, wait if remaining is None else max(0.0, min(wait, remaining)))


def _exhausted(call: CallState, request: httpx.Request, response: httpx.Response) -> BaseException:
    return HTTPXRetryExhausted(
        f"retries exhausted on status {response.status_code}",
        **context(request, response=response, attempts=call.attempts, elapsed=call.elapsed()),
    )


def _scope_deadline(call: CallState) -> float:
    remaining = call.remaining()
    return math.inf if remaining is None else anyio.current_time() + remaining


# -- the transports ----------------------------------------------------------------------------------


class _Wrapping:
    """What both transports share: the policies, and the transport sending each attempt. One built
    here (no *transport* given; *options* are its keywords) is built anew in a child after
    ``os.fork()``: the parent's pooled connections (and its event loop's) are not the child's, and a
    close would end them for the parent too, over TLS."""

    #: The httpx transport built when none is given (sync or async).
    _default: Callable[..., Any]

    def __init__(
        self,
        transport: Any = None,
        *,
        retry: Retry | int | bool | None = None,
        deadline: float | None = None,
        breaker: CircuitBreaker | bool | None = True,
        budget: RetryBudget | bool | None = True,
        bulkhead: Bulkhead | bool | None = False,
        rate_limit: RateLimit | bool | None = None,
        max_response_size: int | None = None,
        base_url: str | None = None,
        normalizer: Normalizer = DEFAULT_NORMALIZER,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self._options: dict[str, Any] | None = None
        if transport is None:
            self._options = dict(options or {})
            transport = self._default(**self._options)
        self.transport = transport
        self._built()
        if self._options is not None:
            _fork.track(self)
        self.policies = TransportPolicies(
            retry=retry,
            deadline=deadline,
            breaker=breaker,
            budget=budget,
            bulkhead=bulkhead,
            rate_limit=rate_limit,
            max_response_size=max_response_size,
            base_url=base_url,
            normalizer=normalizer,
        )

    def _built(self) -> None:
        """What goes with the transport just built (each transport's own)."""

    def _rebuild(self) -> None:
        """A new transport in place of the one built here, its pool empty; nothing closed."""
        if self._options is not None:
            self.transport = self._default(**self._options)
            self._built()

    def _after_fork_in_child(self) -> None:
        self._rebuild()


class AsyncResilientTransport(_Wrapping, httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that retries, bounds the call by its deadline, asks the circuit
    breaker, pays the retry budget, holds a bulkhead slot and raises typed errors.

    :param transport: The transport that sends each attempt (default ``httpx.AsyncHTTPTransport()``;
        respx and pytest-httpx mock below this one, so the mock sees every retry).
    :param options: Keywords of the ``httpx.AsyncHTTPTransport`` built when *transport* is ``None``
        (``verify``, ``limits``, ``http2`` ...). A transport built here is built anew in a child after
        ``os.fork()``: the parent's connections (and its event loop's) are not the child's.

    The other keywords are :class:`TransportPolicies`'. The deadline ends the hop by cancellation (an
    anyio cancel scope: asyncio and trio alike); a task cancelled by its caller gives back its bulkhead
    slot and its half-open probe, and its outcome is not counted.
    """

    _default = httpx.AsyncHTTPTransport
    transport: httpx.AsyncBaseTransport

    def _built(self) -> None:
        self._connections = self._pool_slots()

    def _pool_slots(self) -> anyio.Semaphore | None:
        """One slot per connection of a pool built here (httpx's default: 100). Calls queue for a slot
        here, not in httpcore's pool, which re-scans every queued request against every connection on
        each of its events: with hundreds queued, the loop falls behind and deadlines pass unserved."""
        if self._options is None:
            return None
        limits = self._options.get("limits", httpx.Limits(max_connections=100))
        if not isinstance(limits, httpx.Limits) or limits.max_connections is None:
            return None
        return anyio.Semaphore(limits.max_connections)

    async def __aenter__(self) -> AsyncResilientTransport:
        await self.transport.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.transport.__aexit__(*args)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # One frame for the whole hop: every frame between the caller and the socket is resumed on each
        # read and unwound by each cancellation, hundreds at once when deadlines pass together.
        call, token = begin(self.policies, request)
        try:
            if call.deadline_passed():
                raise _core.deadline_error(call, request, "the deadline ran out before the request was sent")
            quota = await self._quota_slot(call, request)
            try:
                hop = await self._begin_hop(call, request)
            except BaseException:
                await self._give_back(call, quota)  # the circuit refused it: nothing was sent
                raise
            response: httpx.Response | None = None
            covered = call.extras.get("scope_until")
            if covered is not None:
                # The client may end the call at its deadline without waiting for this task to unwind:
                # it settles the hop's accounts itself, through this (see _deadline).
                call.extras[_deadline.SETTLE] = partial(self._settle, hop, call, request, quota)
            try:
                if call.deadline_at is None or (covered is not None and call.deadline_at >= covered):
                    # No deadline, or the client already ends the call by it (its timer under asyncio, its
                    # cancel scope under trio): one scope per call (each costs the loop work on every
                    # iteration while it is being cancelled).
                    hop.holding = await self._take_slot(hop, call, request)
                    response = await self._attempts(call, request)
                else:
                    with anyio.CancelScope(deadline=_scope_deadline(call)) as scope:
                        hop.holding = await self._take_slot(hop, call, request)
                        response = await self._attempts(call, request)
                    if response is None or scope.cancelled_caught:
                        if response is not None:
                            await response.aclose()
                        raise _core.deadline_error(call, request, _core.where(call))
            except BaseException as exc:
                await self._settle(hop, call, request, quota, exc)
                raise
            finally:
                if covered is not None:
                    call.extras.pop(_deadline.SETTLE, None)
            hop.settled = True  # before any await: a client ending the call meanwhile has nothing to settle
            hop.give_back(call, hop.holding)
            await self._record(hop, response=response)
            if quota is not None:
                await self._gate_steps(call, quota.answered_steps(response.headers, response.status_code))
            return response
        finally:
            if token is not None:
                leave(token)

    async def _settle(
        self, hop: _Hop, call: CallState, request: httpx.Request, quota: QuotaGate | None, exc: BaseException
    ) -> None:
        """Close the accounts of a hop that failed with *exc*, once, whoever comes first: this task
        unwinding, or the client that ended the call at its deadline without waiting for it."""
        if hop.settled:
            return
        hop.settled = True
        try:
            await self._give_back(call, quota)  # cancelled or refused before it sent
            await self._record_failure(hop, call, request, exc)
        finally:
            hop.give_back(call, hop.holding)

    async def _record_failure(
        self, hop: _Hop, call: CallState, request: httpx.Request, exc: BaseException
    ) -> None:
        """Tell the breaker how the hop failed. A task cancelled by its caller lands here too: its
        outcome is not counted (an open circuit's probe slot goes back). Cancelled by the client's
        scope at the deadline, it counts as the deadline error it becomes. Shielded when the store is
        not in memory: it must hear of it even while the task is being cancelled.

        A frame of its own, so that no frame on the error's traceback keeps the error (a reference
        cycle per failed call, left to the cyclic collector: pauses of milliseconds when hundreds of
        deadlines pass together)."""
        if hop.breaker is None or hop.permit is None:
            return  # nothing to tell: the retry budget hears only of answers
        outcome: BaseException = exc
        if isinstance(exc, anyio.get_cancelled_exc_class()) and call.deadline_passed():
            outcome = _core.deadline_error(call, request, _core.where(call))
        if self.policies.local:
            hop.record(error=outcome)
            return
        with anyio.CancelScope(shield=True):
            await self._record(hop, error=outcome)

    async def _begin_hop(self, call: CallState, request: httpx.Request) -> _Hop:
        """The hop's policies asked: inline when their state is in memory, by awaiting the store's
        async ops (RedisStore's), else in a worker thread."""
        if self.policies.local:
            return _Hop.begin(self.policies, call, request)
        if self.policies.awaitable:
            return await _Hop.abegin(self.policies, call, request)
        return await anyio.to_thread.run_sync(partial(_Hop.begin, self.policies, call, request))

    async def _record(self, hop: _Hop, **outcome: Any) -> None:
        """Tell the hop's policies its outcome, as :meth:`_begin_hop` asks them."""
        if self.policies.local:
            hop.record(**outcome)
        elif self.policies.awaitable:
            await hop.arecord(**outcome)
        else:
            await anyio.to_thread.run_sync(partial(hop.record, **outcome))

    async def _decide(self, step: Decide, call: CallState) -> Next | None:
        """The retry policy's decision. With the budget in a store with async ops, the retry's tokens
        are taken first by awaiting the store (the decision, synchronous, asks the gate, which answers
        with them), and given back if the decision stopped before it asked. The rate limit's ops (what
        the answer taught, the retry's slot) are awaited where the decision asks them: a slot is
        reserved only for a retry the other gates let go."""
        if self.policies.local:
            return run_gate_steps(call, step.decide())
        if not self.policies.awaitable:
            return await anyio.to_thread.run_sync(run_gate_steps, call, step.decide())
        gates = [
            gate
            for gate in call.retry_gates
            if isinstance(gate, BudgetGate) and not isinstance(gate.budget.store, MemoryStore)
        ]
        for gate in gates:
            await arun_steps(gate.budget.store, gate.pay_steps(step.reason))
        try:
            return await self._gate_steps(call, step.decide())
        finally:
            with anyio.CancelScope(shield=True):
                for gate in gates:
                    await arun_steps(gate.budget.store, gate.refund_steps())

    async def _quota_slot(self, call: CallState, request: httpx.Request) -> QuotaGate | None:
        """The rate limit's slot for the first attempt, waited for by sleeping (cancellable); its typed
        refusal when none comes within the call's time. A task cancelled while it waits gives its
        reserved slot back (the next caller may take it)."""
        gate = gate_for(self.policies.rate_limit, call, request)
        if gate is None:
            return None
        store = gate.policy.store
        steps: SlotSteps[None] = gate.take_steps(call, request)
        answer: Result | None = None
        try:
            while True:
                try:
                    step = steps.send(answer)
                except StopIteration:
                    return gate
                if isinstance(step, float):
                    await anyio.sleep(step)
                    answer = None
                else:
                    answer = await self._store_op(store, *step)
        except QuotaExceededError as exc:
            raise _core.typed(exc, call, request) from None
        except BaseException:
            await self._give_back(call, gate)
            raise

    async def _give_back(self, call: CallState, gate: QuotaGate | None) -> None:
        """Give back *gate*'s reserved slot, if it holds one, shielded: the task may be being cancelled."""
        if gate is None or gate.reserved is None:
            return
        with anyio.CancelScope(shield=True):
            await self._gate_steps(call, gate.give_back_steps())

    async def _store_op(self, store: StateStore, op: AtomicOp, key: str, args: Sequence[float]) -> Result:
        """One of the rate limit's store ops: inline when the state is in memory, awaited through the
        store's async ops (RedisStore's: ``redis.asyncio``, or a worker thread under trio), else in a
        worker thread (a Redis round trip, bounded by the store's ``op_timeout``, must not stall the
        loop)."""
        if isinstance(store, MemoryStore):
            return store.run(op, key, args)
        if _awaitable(store):
            return await store.arun(op, key, args)
        return await anyio.to_thread.run_sync(store.run, op, key, args)

    async def _gate_steps(self, call: CallState, steps: OpSteps[_T]) -> _T:
        """Drive *steps* whose store ops are the rate limit's of *call*, as :meth:`_store_op` asks them."""
        gate = current_gate(call)
        store = None if gate is None else gate.policy.store
        if store is None or isinstance(store, MemoryStore):
            return run_gate_steps(call, steps)
        if _awaitable(store):
            return await arun_steps(store, steps)
        return await anyio.to_thread.run_sync(run_steps, store, steps)

    async def _attempts(self, call: CallState, request: httpx.Request) -> httpx.Response:
        """The hop's attempts (:func:`attempts`, its I/O awaited), each holding one of the pool's
        connection slots from its send until its body was read or the response closed (a streamed
        response's, until it is returned)."""
        plan = attempts(self.policies, call, request)
        slot = None if self._connections is None else _SlotHolder(self._connections)
        quota = None if self.policies.rate_limit is None else current_gate(call)
        answer: Any = None
        try:
            while True:
                try:
                    step = plan.send(answer)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                finally:
                    answer = None  # an error it carried leaves without this frame holding it
                if isinstance(step, Send):
                    observer = call.observer
                    if observer is not None:
                        observer.attempt(call, request.headers, on_wire=True)
                    try:
                        if slot is not None:
                            await slot.acquire(call, request)
                        if quota is not None:
                            quota.sent()
                        answer = (await self.transport.handle_async_request(request), None)
                    except httpx.TransportError as exc:
                        answer = (None, exc)
                        if slot is not None:
                            slot.release()
                    else:
                        if observer is not None:
                            observer.answered(call, answer[0].status_code)
                elif isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
                elif isinstance(step, Decide):
                    answer = await self._decide(step, call)
                elif isinstance(step, Read):
                    try:
                        await _aread(step.response, self.policies.max_response_size, call, request)
                    except httpx.TransportError as exc:
                        answer = exc
                    if slot is not None:
                        slot.release()
                else:
                    await step.response.aclose()
                    if slot is not None:
                        slot.release()
        finally:
            if slot is not None:
                slot.release()

    async def _take_slot(self, hop: _Hop, call: CallState, request: httpx.Request) -> bool:
        bulkhead = hop.bulkhead
        if bulkhead is None:
            return False
        if hop.take_slot_now():
            return True
        remaining = call.remaining()
        wait = bulkhead.max_wait if remaining is None else max(0.0, min(bulkhead.max_wait, remaining))
        waited = 0.0
        started = anyio.current_time()
        while waited < wait:
            await anyio.sleep(min(_BULKHEAD_POLL, wait - waited))
            if hop.take_slot_now():
                return True
            waited = anyio.current_time() - started
        raise _core.typed(hop.bulkhead_full(waited), call, request)


class _SlotHolder:
    """One attempt's hold on the pool's connection slots: taken before the request is handed to the
    pool, waited for at most the request's ``pool`` timeout (else ``httpx.PoolTimeout``, as httpx's own
    pool raises it), given back once."""

    __slots__ = ("held", "slots")

    def __init__(self, slots: anyio.Semaphore) -> None:
        self.slots = slots
        self.held = False

    async def acquire(self, call: CallState, request: httpx.Request) -> None:
        try:
            self.slots.acquire_nowait()
        except anyio.WouldBlock:
            pass
        else:
            self.held = True
            return
        timeout = (request.extensions.get("timeout") or {}).get("pool")
        remaining = call.remaining()
        if timeout is None or (remaining is not None and timeout >= remaining - _core.DEADLINE_SLACK):
            # The call's deadline ends the wait (a cancel scope per waiting task costs the loop work on
            # each of its iterations while hundreds are cancelled at once).
            await self.slots.acquire()
            self.held = True
        else:
            with anyio.move_on_after(float(timeout)) as scope:
                await self.slots.acquire()
                self.held = True
            if scope.cancelled_caught:
                raise httpx.PoolTimeout("no connection of the pool became free within the pool timeout")
        if call.deadline_passed():
            # A slot freed as the deadline passed, before its cancellation reached this task: no
            # connection is opened for a call that is over.
            self.release()
            raise _core.deadline_error(call, request, "the deadline ran out waiting for a connection")

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()


class ResilientTransport(_Wrapping, httpx.BaseTransport):
    """The sync twin of :class:`AsyncResilientTransport`, for ``httpx.Client``: the same decisions.

    Without cancellation, the deadline bounds every socket wait of each attempt (connect, write, read
    timeouts clamped to the time left when the attempt starts), every backoff sleep, the bulkhead wait,
    and is checked between body chunks.

    An ``httpx.HTTPTransport`` built here (no *transport* given; *options* are its keywords) is built
    anew in a child after ``os.fork()`` and once gevent or eventlet has patched ``threading`` after it
    was built: httpcore's pool holds a lock while it polls a socket, which a lock made before the patch
    turns into a hang of every green thread.
    """

    _default = httpx.HTTPTransport
    transport: httpx.BaseTransport

    def _built(self) -> None:
        # What httpcore's locks are made of, now (see handle_request).
        self._lock_type = threading.Lock

    def __enter__(self) -> ResilientTransport:
        self.transport.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self.transport.__exit__(*args)

    def close(self) -> None:
        self.transport.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._lock_type is not threading.Lock:
            # threading was monkey-patched since the pool was built: a new pool, with green locks. (A
            # lock of the parent's pool may also be held by a thread a forked child does not have.)
            self._rebuild()
        call, token = begin(self.policies, request)
        try:
            return self._hop(call, request)
        finally:
            if token is not None:
                leave(token)

    def _hop(self, call: CallState, request: httpx.Request) -> httpx.Response:
        if call.deadline_passed():
            raise _core.deadline_error(call, request, "the deadline ran out before the request was sent")
        quota = gate_for(self.policies.rate_limit, call, request)
        if quota is not None:
            try:
                quota.take(call, request)
            except QuotaExceededError as exc:
                raise _core.typed(exc, call, request) from None
        hop = _Hop.begin(self.policies, call, request)
        holding = False
        try:
            if hop.bulkhead is not None and hop.compartment is not None:
                try:
                    hop.bulkhead.acquire(hop.compartment, max_wait=call.remaining())
                except BulkheadFullError as exc:
                    raise _core.typed(exc, call, request) from None
                holding = True
            response = self._run(attempts(self.policies, call, request), call, request)
        except BaseException as exc:
            hop.record(error=exc)
            raise
        finally:
            hop.give_back(call, holding)
        hop.record(response=response)
        if quota is not None:
            quota.answered(response.headers, response.status_code)
        return response

    def _run(self, plan: Plan, call: CallState, request: httpx.Request) -> httpx.Response:
        answer: Any = None
        while True:
            try:
                step = plan.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            finally:
                answer = None  # an error it carried leaves without this frame holding it
            if isinstance(step, Send):
                if call.observer is not None:
                    call.observer.attempt(call, request.headers, on_wire=True)
                try:
                    answer = (self.transport.handle_request(request), None)
                except httpx.TransportError as exc:
                    answer = (None, exc)
                else:
                    if call.observer is not None:
                        call.observer.answered(call, answer[0].status_code)
            elif isinstance(step, Sleep):
                time.sleep(step.seconds)
            elif isinstance(step, Decide):
                answer = run_gate_steps(call, step.decide())
            elif isinstance(step, Read):
                try:
                    _read(step.response, self.policies.max_response_size, call, request)
                except httpx.TransportError as exc:
                    answer = exc
            else:
                step.response.close()


def _read(response: httpx.Response, limit: int | None, call: CallState, request: httpx.Request) -> None:
    """``response.read()``, checking the call's deadline between chunks and the size after decoding."""
    chunks = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if limit is not None and size > limit:
            response.close()
            raise too_large(limit, response, call, request)
        chunks.append(chunk)
        if call.deadline_passed():
            response.close()
            raise _core.deadline_error(call, request, "the deadline ran out while reading the body")
    set_read_body(response, b"".join(chunks))


async def _aread(
    response: httpx.Response, limit: int | None, call: CallState, request: httpx.Request
) -> None:
    """``await response.aread()``, at most *limit* bytes after decoding."""
    if limit is None:
        await response.aread()
        return
    chunks = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            await response.aclose()
            raise too_large(limit, response, call, request)
        chunks.append(chunk)
    set_read_body(response, b"".join(chunks))


def too_large(
    limit: int, response: httpx.Response, call: CallState, request: httpx.Request
) -> HTTPXResponseTooLarge:
    """The error of a body past *limit* decoded bytes (as the requests adapter words it)."""
    return HTTPXResponseTooLarge(
        f"the decoded body passed max_response_size ({limit} bytes); nothing more was read",
        code="body_too_large",
        details={"limit": limit},
        **context(request, response=response, attempts=call.attempts, elapsed=call.elapsed()),
    )
