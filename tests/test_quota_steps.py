"""The rate limit's store ops written once as steps: what each step asks the store, in what order, and
that a thread's driver (``run_steps``) and a task's (``arun_steps``) get the same answers from it."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import anyio
import pytest
import requests
from urllib3.response import HTTPResponse

from resilient_session import RetryPolicy, _decide
from resilient_session._attempts import may_go, may_go_steps
from resilient_session._call import CallState
from resilient_session._quota import GATE_KEY, QuotaGate, gate_for, run_gate_steps
from resilient_session.errors import QuotaExceededError
from resilient_session.policies import RateLimit
from resilient_session.policies.quota_headers import Quota
from resilient_session.policies.ratelimit import _ACQUIRE, _LEARN, _SNAPSHOT
from resilient_session.stores import MemoryStore
from resilient_session.stores.base import StateStore, arun_steps

KEY = "api"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _policy(clock: Clock, **options: Any) -> RateLimit:
    return RateLimit(store=MemoryStore(clock=clock), **options)


def _ops(steps: Generator[Any, Any, Any], store: StateStore) -> tuple[list[Any], Any]:
    """Drive *steps* with *store*, recording every op asked: (ops, value returned)."""
    asked: list[Any] = []
    answer = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as done:
            return asked, done.value
        asked.append(step)
        answer = store.run(*step)


# -- RateLimit: one op per step ------------------------------------------------------------------------


def test_acquire_steps_ask_one_acquire_op_on_the_quota_key(clock: Clock) -> None:
    policy = _policy(clock, calls=10, burst=2)
    asked, slot = _ops(policy.acquire_steps(KEY, 5.0, after=0.25), policy.store)
    assert [(op, key) for op, key, _ in asked] == [(_ACQUIRE, "quota:" + KEY)]
    assert list(asked[0][2]) == [10.0, 2.0, 5.0, 0.0, 0.25]
    assert slot.granted and slot.wait == pytest.approx(0.25) and slot.rate == pytest.approx(10.0)


def test_a_thread_and_a_task_driving_the_steps_get_the_same_slots(clock: Clock) -> None:
    sync, async_ = _policy(clock, calls=4), _policy(clock, calls=4)

    async def take(n: int) -> list[tuple[bool, float]]:
        slots = [await arun_steps(async_.store, async_.acquire_steps(KEY, 1.0)) for _ in range(n)]
        return [(slot.granted, slot.wait) for slot in slots]

    threaded = [(slot.granted, slot.wait) for slot in (sync.acquire(KEY, 1.0) for _ in range(7))]
    awaited = anyio.run(take, 7)
    assert threaded == awaited
    assert [granted for granted, _ in awaited] == [True] * 5 + [False] * 2
    # Refused past max_wait, and the refusal reserved nothing: the next slot is still 1.25 s away.
    assert [wait for _, wait in awaited] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.25])


def test_the_limit_reached_is_logged_once_per_acquire_whichever_driver(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    policy = _policy(clock, calls=1)
    with caplog.at_level(logging.WARNING, logger="resilient_session"):
        policy.acquire(KEY)  # no wait: nothing logged, no hint
        assert "quota-log:" + KEY not in policy.store.hints
        anyio.run(arun_steps, policy.store, policy.acquire_steps(KEY))
        hinted = policy.store.hints["quota-log:" + KEY]
        clock.now += 1.0
        policy.acquire(KEY)  # waits again: the hint moves on, no second warning
    assert policy.store.hints["quota-log:" + KEY] == hinted + 1.0
    assert len([r for r in caplog.records if "rate limit" in r.getMessage()]) == 1


def test_learn_steps_ask_nothing_when_the_answer_teaches_nothing(clock: Clock) -> None:
    policy = _policy(clock, calls=10)
    assert _ops(policy.learn_steps(KEY, None, 200), policy.store)[0] == []
    unused = Quota(remaining=5)
    assert _ops(policy.learn_steps(KEY, unused, 200), policy.store)[0] == []
    held = Quota(retry_after=3.0)
    asked, _ = _ops(policy.learn_steps(KEY, held, 429, age=0.5), policy.store)
    assert [(op, key) for op, key, _ in asked] == [(_LEARN, "quota:" + KEY)]
    state_asked, state = _ops(policy.state_steps(KEY), policy.store)
    assert [op for op, _, _ in state_asked] == [_SNAPSHOT]
    assert state.hold == pytest.approx(3.0) and state == policy.state(KEY)


# -- QuotaGate: the first slot's steps, the retry's, the answer's ---------------------------------------


def _call(deadline: float | None = None) -> CallState:
    call = CallState.begin("GET", "http://127.0.0.1:9/x")
    call.tighten_deadline(deadline)
    return call


def _request() -> requests.PreparedRequest:
    return requests.Request("GET", "http://127.0.0.1:9/x").prepare()


def _drive_take(gate: QuotaGate, call: CallState, clock: Clock, during_wait: Any = None) -> list[Any]:
    """Drive ``take_steps``, the clock moved by each wait (and *during_wait* run once, as another caller
    would meanwhile): every step seen, ops as their names, waits as floats."""
    seen: list[Any] = []
    steps = gate.take_steps(call, _request())
    answer = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration:
            return seen
        if isinstance(step, float):
            seen.append(step)
            clock.now += step
            if during_wait is not None:
                during_wait()
                during_wait = None
            answer = None
        else:
            seen.append(step[0].name)
            answer = gate.policy.store.run(*step)


def test_take_steps_ask_the_slot_sleep_then_look_for_a_hold(clock: Clock) -> None:
    policy = _policy(clock, calls=2)
    gate = QuotaGate(policy, KEY)
    assert _drive_take(gate, _call(), clock) == ["quota_acquire"]  # the first slot is now
    assert _drive_take(gate, _call(), clock) == ["quota_acquire", 0.5, "quota_snapshot"]
    assert gate.waited == pytest.approx(0.5)


def test_take_steps_queue_again_behind_a_hold_that_began_while_sleeping(clock: Clock) -> None:
    policy = _policy(clock, calls=2)
    policy.acquire(KEY)
    gate = QuotaGate(policy, KEY)
    held = Quota(retry_after=2.0)
    seen = _drive_take(gate, _call(), clock, lambda: policy.learn_from(KEY, held, 429))
    assert seen[:4] == ["quota_acquire", 0.5, "quota_snapshot", "quota_acquire"]
    assert seen[4] == pytest.approx(2.0)  # the new slot lies behind the hold


def test_take_steps_raise_the_refusal_after_the_op_that_refused(clock: Clock) -> None:
    policy = _policy(clock, calls=1)
    policy.acquire(KEY)
    gate = QuotaGate(policy, KEY)
    steps = gate.take_steps(_call(deadline=0.5), _request())
    op = next(steps)
    assert isinstance(op, tuple) and op[0] is _ACQUIRE
    with pytest.raises(QuotaExceededError) as caught:
        steps.send(policy.store.run(*op))
    assert caught.value.retry_after == pytest.approx(1.0)


def test_the_sync_take_sleeps_what_the_steps_ask(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("resilient_session._quota.time.sleep", slept.append)
    policy = _policy(clock, calls=4)
    policy.acquire(KEY)
    QuotaGate(policy, KEY).take(_call(), _request())
    assert slept == pytest.approx([0.25])


def test_before_retry_steps_reserve_the_retrys_slot_after_its_delay(clock: Clock) -> None:
    policy = _policy(clock, calls=2)
    gate = QuotaGate(policy, KEY)
    asked, wait = _ops(gate.before_retry_steps(_call(), 0.1), policy.store)
    assert [op for op, _, _ in asked] == [_ACQUIRE] and list(asked[0][2])[-1] == 0.1
    assert wait == pytest.approx(0.1)  # the schedule was free: the retry policy's own delay
    assert gate.before_retry(_call(), 0.1) == pytest.approx(0.6)  # the next slot: 0.5 s after that one
    assert gate.waited == pytest.approx(0.5)
    assert _ops(gate.before_retry_steps(_call(deadline=0.5), 0.1), policy.store)[1] is None


def test_answered_steps_keep_the_quota_and_learn_from_it(clock: Clock) -> None:
    policy = _policy(clock)
    gate = QuotaGate(policy, KEY)
    asked, _ = _ops(gate.answered_steps({"retry-after": "4"}, 429), policy.store)
    assert [op for op, _, _ in asked] == [_LEARN]
    assert gate.quota is not None and gate.quota.retry_after == 4
    assert policy.state(KEY).hold == pytest.approx(4.0)
    assert _ops(gate.answered_steps({}, 200), policy.store)[0] == []


# -- the retry decision: the slot asked last, only for a retry the other gates let go -------------------


def _retrying() -> _decide.Retrying:
    response = HTTPResponse(body=b"", status=503, headers={}, preload_content=False)
    decision = _decide.after_status(RetryPolicy(backoff_factor=0), "GET", "/x", response)
    assert isinstance(decision, _decide.Retrying)
    return decision


def test_may_go_steps_reserve_no_slot_for_a_retry_a_gate_refused(clock: Clock) -> None:
    policy = _policy(clock, calls=1)
    call = _call()
    gate = gate_for(policy, call, _request())
    assert gate is not None
    call.retry_gates.append(lambda _call, _reason: False)
    asked, wait = _ops(may_go_steps(_retrying(), call, 503), policy.store)
    assert wait is None and asked == []
    assert policy.acquire(gate.key).wait == 0.0  # the schedule's first slot is still free
    assert call.attempts == 1


def test_may_go_steps_ask_the_slot_once_the_gates_allowed(clock: Clock) -> None:
    policy = _policy(clock, calls=1)
    call = _call()
    gate = gate_for(policy, call, _request())
    assert gate is not None
    policy.acquire(gate.key)  # another caller's: the retry waits for the next slot
    asked, wait = _ops(may_go_steps(_retrying(), call, 503), policy.store)
    assert [op for op, _, _ in asked] == [_ACQUIRE]
    assert wait == pytest.approx(1.0) and call.attempts == 2
    assert may_go(_retrying(), call, 503) == pytest.approx(2.0)  # the sync wrapper, the next slot


def test_run_gate_steps_drive_with_the_gates_store_and_need_none_without_a_gate(clock: Clock) -> None:
    call = _call()
    assert run_gate_steps(call, may_go_steps(_retrying(), call, 503)) == 0.0
    policy = _policy(clock, calls=1)
    call.extras[GATE_KEY] = QuotaGate(policy, KEY)
    assert run_gate_steps(call, policy.acquire_steps(KEY)).granted
    del call.extras[GATE_KEY]
    with pytest.raises(RuntimeError, match="quota_acquire"):
        run_gate_steps(call, policy.acquire_steps(KEY))


# -- a reserved slot given back ------------------------------------------------------------------------


def test_a_thread_interrupted_while_it_sleeps_for_its_slot_gives_it_back(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _policy(clock, calls=1)
    policy.acquire("k")
    gate = QuotaGate(policy, "k")

    def interrupted(seconds: float) -> None:
        assert seconds == pytest.approx(1.0)
        raise KeyboardInterrupt  # a signal, or a gevent timeout, while it sleeps

    monkeypatch.setattr("resilient_session._quota.time.sleep", interrupted)
    call = CallState.begin("GET", "http://127.0.0.1:9/x")
    with pytest.raises(KeyboardInterrupt):
        gate.take(call, requests.Request("GET", "http://127.0.0.1:9/x").prepare())
    assert gate.reserved is None
    assert policy.acquire("k").wait == pytest.approx(1.0)  # its slot; a spent one would give 2.0


def test_a_slot_is_not_given_back_once_its_attempt_was_sent(clock: Clock) -> None:
    policy = _policy(clock, calls=1)
    policy.acquire("k")
    gate = QuotaGate(policy, "k")
    call = CallState.begin("GET", "http://127.0.0.1:9/x")
    steps = gate.take_steps(call, requests.Request("GET", "http://127.0.0.1:9/x").prepare())
    answer: Any = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration:
            break
        if isinstance(step, float):
            clock.now += step  # slept until its slot
            answer = None
        else:
            answer = policy.store.run(*step)
    assert gate.reserved is not None and gate.reserved.wait == pytest.approx(1.0)
    gate.sent()
    gate.give_back()
    assert policy.acquire("k").wait == pytest.approx(1.0)  # given back, it would be 0
