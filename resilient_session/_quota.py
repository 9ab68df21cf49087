"""One call's place in a rate limit: a slot taken before each attempt, every answer learned from.

The adapter opens a :class:`QuotaGate` per hop when a :class:`~resilient_session.policies.RateLimit` is in
force and keeps it in the call's state, where the retry policy finds it before each retry. Each of its
store asks is written once, as steps (``take_steps``, ``before_retry_steps``, ``answered_steps``): a thread
runs them with ``store.run``, a task awaits ``store.arun`` (``redis.asyncio`` for a RedisStore).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from typing import Any, TypeVar

from ._call import CallState
from .errors import QuotaExceededError
from .policies.quota_headers import Quota, parse_quota
from .policies.ratelimit import QuotaSlot, RateLimit, rate_text
from .stores.base import AtomicOp, OpSteps, Result, run_steps

__all__ = [
    "GATE_KEY",
    "KEPT_FOR_CALL",
    "QuotaGate",
    "SlotSteps",
    "current_gate",
    "gate_for",
    "open_gate",
    "run_gate_steps",
]

_T = TypeVar("_T")

#: The steps of waiting for a slot: each store op ``(op, key, args)``, answered with its result, and each
#: wait in seconds (a ``float``), answered with ``None`` once the caller slept it; the value returned.
SlotSteps = Generator[tuple[AtomicOp, str, Sequence[float]] | float, Any, _T]

#: A call waits for its slot only if, after the wait, at least this share of its time left remains for
#: the call itself: a slot at the very end of the deadline would only make the call time out there.
KEPT_FOR_CALL = 0.1

#: Where the gate of the hop in progress lives in CallState.extras.
GATE_KEY = "quota_gate"
# How often a call that slept for its slot looks again for a hold that began meanwhile.
_RECHECKS = 3


class QuotaGate:
    """The rate limit of one hop: :meth:`take` before the first attempt, :meth:`before_retry` before
    each retry, :meth:`answered` for each response. ``quota`` is the last quota an answer described."""

    __slots__ = ("key", "policy", "quota", "reserved", "sent_at", "waited")

    def __init__(self, policy: RateLimit, key: str) -> None:
        self.policy = policy
        self.key = key
        self.quota: Quota | None = None
        #: The slot reserved for the next attempt and not used yet: given back if the call ends first.
        self.reserved: QuotaSlot | None = None
        self.sent_at = time.monotonic()
        self.waited = 0.0

    def take(self, call: CallState, request: Any) -> None:
        """Wait for the first attempt's slot, or raise :class:`~resilient_session.errors.QuotaExceededError`
        at once (nothing sent) when it does not come within the call's time."""
        store = self.policy.store
        steps = self.take_steps(call, request)
        answer: Result | None = None
        try:
            while True:
                try:
                    step = steps.send(answer)
                except StopIteration:
                    return
                if isinstance(step, float):
                    time.sleep(step)
                    answer = None
                else:
                    answer = store.run(*step)
        except BaseException:
            # Interrupted while sleeping for its slot (a gevent timeout, a signal): nothing was sent.
            self.give_back()
            raise

    def take_steps(self, call: CallState, request: Any) -> SlotSteps[None]:
        """:meth:`take` as steps, written once for a thread and a task: it yields each store op
        ``(op, key, args)`` (answer: its result, from ``store.run`` or ``await store.arun``) and each
        wait in seconds, a ``float`` (answer: ``None`` once slept, by ``time.sleep`` or ``anyio.sleep``)."""
        slot = yield from self.policy.acquire_steps(self.key, _max_wait(call))
        self.reserved = slot if slot.granted else None
        for _ in range(_RECHECKS):
            if not slot.granted or slot.wait <= 0:
                break
            yield from self._waiting(slot.wait)
            # While this call slept, an answer may have told every caller to hold back (a 429, nothing
            # left): its slot is void, it queues again behind the hold instead of sending into it.
            state = yield from self.policy.state_steps(self.key)
            if state.hold <= 0:
                return
            slot = yield from self.policy.acquire_steps(self.key, _max_wait(call))
            self.reserved = slot if slot.granted else None
        if not slot.granted:
            scope = self.key.split("#", 1)[0]
            held = " (the upstream holds every call back)" if slot.hold > 0 else ""
            raise QuotaExceededError(
                f"rate limit of {scope} ({rate_text(slot.rate)}) has no slot for this call within its "
                f"time left{held}; the next is in {slot.wait:.3g}s",
                key=scope,
                retry_after=slot.wait,
                rate=slot.rate,
                request=request,
                url=str(request.url) if request.url else None,  # an httpx.URL too
                elapsed=call.elapsed(),
            )
        yield from self._waiting(slot.wait)

    def before_retry(self, call: CallState, delay: float) -> float | None:
        """The wait before the next retry (at least *delay*, the retry policy's own), its slot
        reserved; ``None`` when the limit has no slot for it within the call's time."""
        return run_steps(self.policy.store, self.before_retry_steps(call, delay))

    def before_retry_steps(self, call: CallState, delay: float) -> OpSteps[float | None]:
        """:meth:`before_retry` as the store op it takes."""
        slot = yield from self.policy.acquire_steps(self.key, _max_wait(call), after=delay)
        if not slot.granted:
            return None
        self.reserved = slot
        self.waited += max(0.0, slot.wait - delay)
        self.sent_at = time.monotonic() + slot.wait
        return slot.wait

    def sent(self) -> None:
        """The attempt its slot was reserved for is being sent: the slot is used."""
        self.reserved = None

    def give_back(self) -> None:
        """Give back the slot reserved for an attempt that will not be sent (the call was cancelled or
        its deadline passed while it waited): the schedule keeps no slot for a request never made."""
        run_steps(self.policy.store, self.give_back_steps())

    def give_back_steps(self) -> OpSteps[None]:
        """:meth:`give_back` as the store op it takes (none when no slot is reserved)."""
        slot, self.reserved = self.reserved, None
        if slot is not None:
            yield from self.policy.release_steps(self.key, slot)

    def answered(self, headers: Mapping[str, str], status: int) -> None:
        """Learn from a response's *headers* and *status*."""
        run_steps(self.policy.store, self.answered_steps(headers, status))

    def answered_steps(self, headers: Mapping[str, str], status: int) -> OpSteps[None]:
        """:meth:`answered` as the store op it takes (none when the answer says nothing to learn)."""
        quota = parse_quota(headers, status)
        if quota is not None:
            self.quota = quota
        yield from self.policy.learn_steps(self.key, quota, status, age=time.monotonic() - self.sent_at)

    def attributes(self) -> dict[str, float]:
        """The last known quota and the time waited, as span attributes (``resilient_session.quota.*``)."""
        found: dict[str, float] = {"resilient_session.quota.wait_ms": round(self.waited * 1e3, 3)}
        quota = self.quota
        if quota is not None:
            for name in ("limit", "remaining", "reset"):
                value = getattr(quota, name)
                if value is not None:
                    found[f"resilient_session.quota.{name}"] = value
        return found

    def _waiting(self, wait: float) -> Generator[float, None, None]:
        if wait > 0:
            self.waited += wait
            yield float(wait)
        self.sent_at = time.monotonic()


def _max_wait(call: CallState) -> float | None:
    remaining = call.remaining()
    if remaining is None:
        return None
    return max(0.0, remaining * (1 - KEPT_FOR_CALL))


def open_gate(policy: RateLimit | None, call: CallState, request: Any) -> QuotaGate | None:
    """Take the first slot of *request* under *policy* and keep the gate on *call* for its retries
    (``None``, and nothing kept, without a policy)."""
    gate = gate_for(policy, call, request)
    if gate is not None:
        gate.take(call, request)
    return gate


def gate_for(policy: RateLimit | None, call: CallState, request: Any) -> QuotaGate | None:
    """The gate of *request* under *policy*, kept on *call* for its retries, no slot taken yet (``None``,
    and nothing kept, without a policy)."""
    if policy is None:
        call.extras.pop(GATE_KEY, None)
        return None
    gate = QuotaGate(policy, policy.key_for(str(request.url or ""), request.headers))
    call.extras[GATE_KEY] = gate
    return gate


def run_gate_steps(call: CallState, steps: OpSteps[_T]) -> _T:
    """Drive *steps*, a decision of *call* whose only store ops are its rate limit's (its gate's), with
    that store's ``run``; without a gate they ask no store."""
    gate = current_gate(call)
    if gate is not None:
        return run_steps(gate.policy.store, steps)
    try:
        step = next(steps)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    steps.close()
    raise RuntimeError(f"a store op ({step[0].name}) asked for a call with no rate limit")


def current_gate(call: CallState | None) -> QuotaGate | None:
    """The gate of the hop *call* is sending, if a rate limit is in force."""
    if call is None:
        return None
    gate = call.extras.get(GATE_KEY)
    return gate if isinstance(gate, QuotaGate) else None
