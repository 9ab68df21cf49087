"""Circuit breaker: every transition, driven by an injected clock (no sleeping)."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import threading
from collections.abc import Sequence

import pytest
import requests
import responses

from resilient_session import APIError, BulkheadFullError, CircuitBreaker, CircuitOpenError, ResilientSession
from resilient_session.errors import ClientError, ServerError
from resilient_session.policies import CircuitState, StateChange
from resilient_session.policies.breaker import Permit
from resilient_session.stores import MemoryStore, default_store
from resilient_session.stores.base import AtomicOp, Result

HOST = "https://api.example.com:443"
URL = "https://api.example.com/v1/items"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStore(MemoryStore):
    """Counts how often the store itself is asked."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.runs = 0

    def run(self, op: AtomicOp, key: str, args: Sequence[float]) -> Result:
        self.runs += 1
        return super().run(op, key, args)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[StateChange]:
    return []


def make(clock: Clock, events: list[StateChange] | None = None, **options: object) -> CircuitBreaker:
    listeners = [events.append] if events is not None else []
    return CircuitBreaker(store=MemoryStore(clock=clock), listeners=listeners, **options)  # type: ignore[arg-type]


def fail(breaker: CircuitBreaker, host: str = HOST, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(host), error=requests.ConnectionError("refused"))


def succeed(breaker: CircuitBreaker, host: str = HOST, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(host), response=_response(200))


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


def transitions(events: list[StateChange]) -> list[tuple[str, str]]:
    return [(e.old.value, e.new.value) for e in events]


# -- closed -> open ----------------------------------------------------------------------------------


def test_consecutive_failures_open_the_circuit(clock: Clock, events: list[StateChange]) -> None:
    breaker = make(clock, events, consecutive_failures=3, failure_rate_threshold=None)
    fail(breaker, times=2)
    assert breaker.state(HOST).state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state(HOST).state is CircuitState.OPEN
    assert transitions(events) == [("closed", "open")]
    assert events[0].reason == "3 consecutive failures"
    assert events[0].host == HOST
    assert events[0].retry_in == pytest.approx(5.0)


def test_a_success_resets_the_consecutive_count(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=3, failure_rate_threshold=None)
    for _ in range(5):
        fail(breaker, times=2)
        succeed(breaker)
    assert breaker.state(HOST).state is CircuitState.CLOSED
    assert breaker.state(HOST).consecutive_failures == 0


def test_failure_rate_needs_the_minimum_number_of_calls(clock: Clock, events: list[StateChange]) -> None:
    breaker = make(
        clock, events, consecutive_failures=None, failure_rate_threshold=0.5, window_size=10, minimum_calls=10
    )
    for _ in range(4):
        fail(breaker)
        succeed(breaker)
    fail(breaker)  # 5 failures in 9 calls: over the rate, under the minimum
    assert breaker.state(HOST).state is CircuitState.CLOSED
    assert breaker.state(HOST).failure_rate == pytest.approx(5 / 9)
    succeed(breaker)  # 5 of 10: the rate reaches the threshold
    assert breaker.state(HOST).state is CircuitState.OPEN
    assert events[0].reason == "failure rate 50% over the last 10 calls"


def test_a_rate_under_the_threshold_keeps_it_closed(clock: Clock) -> None:
    breaker = make(
        clock, consecutive_failures=None, failure_rate_threshold=0.5, window_size=10, minimum_calls=10
    )
    for _ in range(20):
        fail(breaker)
        succeed(breaker, times=2)
    snapshot = breaker.state(HOST)
    assert snapshot.state is CircuitState.CLOSED
    assert snapshot.calls == 10
    assert snapshot.failures in (3, 4)


def test_the_window_slides(clock: Clock) -> None:
    breaker = make(
        clock, consecutive_failures=None, failure_rate_threshold=0.5, window_size=4, minimum_calls=4
    )
    fail(breaker)
    succeed(breaker, times=3)
    assert breaker.state(HOST).failures == 1
    succeed(breaker)  # the old failure leaves the window
    snapshot = breaker.state(HOST)
    assert (snapshot.calls, snapshot.failures) == (4, 0)
    fail(breaker, times=2)
    assert breaker.state(HOST).state is CircuitState.OPEN


# -- open ----------------------------------------------------------------------------------------------


def test_open_circuit_refuses_with_host_and_time_to_probe(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1, open_wait=5.0)
    fail(breaker)
    clock.advance(2.0)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire(HOST)
    error = caught.value
    assert isinstance(error, APIError)
    assert isinstance(error, requests.ConnectionError)
    assert error.host == HOST
    assert error.retry_in == pytest.approx(3.0)
    assert "next probe in 3.000s" in str(error)


def test_open_circuit_answers_without_asking_the_store(clock: Clock) -> None:
    store = CountingStore(clock)
    breaker = CircuitBreaker(store=store, consecutive_failures=1)
    fail(breaker)
    before = store.runs
    for _ in range(100):
        with pytest.raises(CircuitOpenError):
            breaker.acquire(HOST)
    assert store.runs == before


def test_circuits_are_per_host_by_default(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1)
    fail(breaker, host=breaker.key_for("https://down.example.com/a"))
    assert breaker.key_for("HTTPS://Down.Example.com:443/b?token=x") == "https://down.example.com:443"
    with pytest.raises(CircuitOpenError):
        breaker.acquire(breaker.key_for("https://down.example.com/other"))
    breaker.acquire(breaker.key_for("https://up.example.com/"))
    breaker.acquire(breaker.key_for("http://down.example.com/"))  # another scheme, another port


def test_a_named_circuit_is_shared_by_every_host(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1, name="payments")
    assert (
        breaker.key_for("https://a.example.com/") == breaker.key_for("https://b.example.com/") == "payments"
    )
    fail(breaker, host="payments")
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire(breaker.key_for("https://b.example.com/"))
    assert caught.value.host == "payments"


# -- open -> half-open -> closed / open ------------------------------------------------------------------


def test_after_the_wait_one_probe_goes_and_its_success_closes(
    clock: Clock, events: list[StateChange]
) -> None:
    breaker = make(clock, events, consecutive_failures=1, open_wait=5.0)
    fail(breaker)
    clock.advance(4.999)
    with pytest.raises(CircuitOpenError):
        breaker.acquire(HOST)
    clock.advance(0.001)
    probe = breaker.acquire(HOST)
    assert probe.probe
    with pytest.raises(CircuitOpenError):
        breaker.acquire(HOST)  # only one probe at a time
    assert breaker.state(HOST).state is CircuitState.HALF_OPEN
    breaker.record(probe, response=_response(204))
    assert breaker.state(HOST).state is CircuitState.CLOSED
    assert not breaker.acquire(HOST).probe
    assert transitions(events) == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert events[1].reason == "open wait over; probing"
    assert events[2].reason == "1 probe(s) succeeded"


def test_a_failed_probe_reopens_with_a_growing_capped_wait(clock: Clock, events: list[StateChange]) -> None:
    breaker = make(
        clock, events, consecutive_failures=1, open_wait=5.0, wait_multiplier=2.0, max_open_wait=30.0
    )
    fail(breaker)
    waits = [events[-1].retry_in]
    for _ in range(4):
        clock.advance(waits[-1] or 0.0)
        fail(breaker)  # the probe fails
        assert events[-1].reason == "probe failed"
        waits.append(events[-1].retry_in)
    assert waits == [5.0, 10.0, 20.0, 30.0, 30.0]
    assert breaker.state(HOST).trips == 5
    clock.advance(30.0)
    succeed(breaker)
    assert breaker.state(HOST).trips == 0
    fail(breaker)
    assert events[-1].retry_in == 5.0  # a clean close starts the wait over


def test_several_probes_must_all_succeed(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1, probes=3)
    fail(breaker)
    clock.advance(5.0)
    permits = [breaker.acquire(HOST) for _ in range(3)]
    assert all(p.probe for p in permits)
    with pytest.raises(CircuitOpenError):
        breaker.acquire(HOST)
    breaker.record(permits[0], response=_response(200))
    breaker.record(permits[1], response=_response(200))
    assert breaker.state(HOST).state is CircuitState.HALF_OPEN
    breaker.record(permits[2], response=_response(200))
    assert breaker.state(HOST).state is CircuitState.CLOSED


def test_one_failed_probe_among_several_reopens(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1, probes=2)
    fail(breaker)
    clock.advance(5.0)
    first, second = breaker.acquire(HOST), breaker.acquire(HOST)
    breaker.record(first, response=_response(200))
    breaker.record(second, response=_response(503))
    assert breaker.state(HOST).state is CircuitState.OPEN


def test_a_probe_that_never_reports_frees_its_slot_after_the_lease(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1, probe_lease=30.0)
    fail(breaker)
    clock.advance(5.0)
    breaker.acquire(HOST)  # the probe's process dies: no record
    clock.advance(29.0)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire(HOST)
    assert caught.value.retry_in == pytest.approx(1.0)
    clock.advance(1.0)
    late = breaker.acquire(HOST)
    assert late.probe
    breaker.record(late, response=_response(200))
    assert breaker.state(HOST).state is CircuitState.CLOSED


def test_a_probe_that_ends_uncounted_gives_its_slot_back(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1)
    fail(breaker)
    clock.advance(5.0)
    probe = breaker.acquire(HOST)
    breaker.record(probe, error=ValueError("bug in a hook"))
    assert breaker.state(HOST).state is CircuitState.HALF_OPEN
    assert breaker.acquire(HOST).probe


# -- outcomes ------------------------------------------------------------------------------------------


def test_outcomes_from_an_older_generation_are_ignored(clock: Clock, events: list[StateChange]) -> None:
    breaker = make(clock, events, consecutive_failures=2)
    slow: Permit = breaker.acquire(HOST)  # started while closed, ends much later
    fail(breaker, times=2)
    clock.advance(5.0)
    succeed(breaker)  # probe closes it
    breaker.record(slow, error=requests.ConnectionError())
    breaker.record(slow, error=requests.ConnectionError())
    assert breaker.state(HOST).state is CircuitState.CLOSED
    assert breaker.state(HOST).failures == 0
    assert len(events) == 3


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ({"response": _response(502)}, 1.0),
        ({"response": _response(503)}, 1.0),
        ({"response": _response(504)}, 1.0),
        ({"response": _response(500)}, 0.0),  # one path's application error, not the host's
        ({"response": _response(501)}, 0.0),
        ({"response": _response(505)}, 0.0),
        ({"response": _response(599)}, 0.0),
        ({"response": _response(429)}, 0.0),
        ({"response": _response(404)}, 0.0),
        ({"response": _response(200)}, 0.0),
        ({"error": requests.ConnectionError()}, 1.0),
        ({"error": requests.ReadTimeout()}, 1.0),
        ({"error": requests.ConnectTimeout()}, 1.0),
        ({"error": requests.exceptions.ChunkedEncodingError()}, 1.0),
        ({"error": ServerError("boom", status=502)}, 1.0),
        ({"error": ServerError("boom", status=500)}, 0.0),
        ({"error": ClientError("nope", status=422)}, 0.0),
        ({"error": CircuitOpenError("open", host=HOST)}, 2.0),
        ({"error": BulkheadFullError("full", host=HOST)}, 2.0),
        ({"error": ValueError("bug")}, 2.0),
        ({"error": requests.exceptions.InvalidURL()}, 2.0),
    ],
)
def test_default_classification(outcome: dict[str, object], expected: float) -> None:
    assert CircuitBreaker().classify(**outcome) == expected  # type: ignore[arg-type]


def test_what_counts_as_failure_is_configurable(clock: Clock) -> None:
    class QuotaExceeded(Exception):
        pass

    breaker = make(
        clock,
        consecutive_failures=2,
        failure_statuses={503},
        failure_exceptions=(QuotaExceeded,),
    )
    assert breaker.classify(response=_response(500)) == 0.0
    assert breaker.classify(error=requests.ConnectionError()) == 2.0
    breaker.record(breaker.acquire(HOST), error=QuotaExceeded())
    breaker.record(breaker.acquire(HOST), response=_response(503))
    assert breaker.state(HOST).state is CircuitState.OPEN


def test_429_never_opens_the_circuit(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=3)
    for _ in range(10):
        breaker.record(breaker.acquire(HOST), response=_response(429))
    assert breaker.state(HOST).state is CircuitState.CLOSED


# -- events, control, policy object -----------------------------------------------------------------


def test_transitions_are_logged_with_host_states_and_reason(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = make(clock, consecutive_failures=1)
    with caplog.at_level(logging.INFO, logger="resilient_session"):
        fail(breaker)
        clock.advance(5.0)
        succeed(breaker)
    records = [r for r in caplog.records if r.name == "resilient_session" and hasattr(r, "new_state")]
    assert [(r.levelname, r.old_state, r.new_state) for r in records] == [  # type: ignore[attr-defined]
        ("WARNING", "closed", "open"),
        ("INFO", "open", "half_open"),
        ("INFO", "half_open", "closed"),
    ]
    assert records[0].host == HOST  # type: ignore[attr-defined]
    assert "1 consecutive failures; next probe in 5s" in records[0].getMessage()


def test_a_failing_listener_is_logged_and_never_breaks_the_call(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(change: StateChange) -> None:
        raise RuntimeError("listener bug")

    seen: list[StateChange] = []
    breaker = CircuitBreaker(
        store=MemoryStore(clock=clock), consecutive_failures=1, listeners=[broken, seen.append]
    )
    with caplog.at_level(logging.ERROR, logger="resilient_session"):
        fail(breaker)
    assert len(seen) == 1
    assert any("listener" in r.getMessage() and r.exc_info for r in caplog.records)


def test_reset_closes_and_forgets(clock: Clock, events: list[StateChange]) -> None:
    breaker = make(clock, events, consecutive_failures=1)
    fail(breaker)
    breaker.reset(HOST)
    assert breaker.state(HOST).state is CircuitState.CLOSED
    assert breaker.acquire(HOST)
    assert transitions(events)[-1] == ("open", "closed")
    assert events[-1].reason == "reset"


def test_the_policy_is_immutable_and_new_keeps_the_store(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        breaker.open_wait = 1.0  # type: ignore[misc]
    slower = breaker.new(open_wait=30.0)
    assert slower.open_wait == 30.0 and breaker.open_wait == 5.0
    assert slower.store is breaker.store
    fail(breaker)
    with pytest.raises(CircuitOpenError):
        slower.acquire(HOST)
    assert "open_wait=30.0" in repr(slower)
    assert "failure_statuses" not in repr(slower)


@pytest.mark.parametrize(
    "options",
    [
        {"failure_rate_threshold": 0.0},
        {"failure_rate_threshold": 1.5},
        {"minimum_calls": 30, "window_size": 20},
        {"consecutive_failures": 0},
        {"consecutive_failures": None, "failure_rate_threshold": None},
        {"open_wait": 0},
        {"wait_multiplier": 0.5},
        {"probes": 0},
    ],
)
def test_invalid_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(**options)  # type: ignore[arg-type]


def test_an_open_wait_over_the_cap_is_kept_as_is(clock: Clock, events: list[StateChange]) -> None:
    breaker = make(clock, events, consecutive_failures=1, open_wait=600.0)
    fail(breaker)
    clock.advance(600.0)
    fail(breaker)
    assert [e.retry_in for e in events if e.new is CircuitState.OPEN] == [600.0, 600.0]


def test_pickling_gives_the_same_policy_with_fresh_state(clock: Clock) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, open_wait=7.0, store=MemoryStore())
    fail(breaker)
    copy = pickle.loads(pickle.dumps(breaker))
    assert copy.open_wait == 7.0
    assert copy.state(HOST).state is CircuitState.CLOSED


def test_a_breaker_without_a_store_shares_the_process_store_also_after_pickling() -> None:
    # The process-wide store is the receiving process's own: unpickled in this process, the same state.
    breaker = CircuitBreaker(consecutive_failures=1)
    assert breaker.store is default_store()
    fail(breaker)
    other = CircuitBreaker(consecutive_failures=1)
    assert other.state(HOST).state is CircuitState.OPEN
    copy = pickle.loads(pickle.dumps(breaker))
    assert copy.store is default_store()
    assert copy.state(HOST).state is CircuitState.OPEN


def test_retry_gate_stops_probes_and_retries_into_an_open_circuit(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1)
    permit = breaker.acquire(HOST)
    gate = breaker.gate(permit)
    assert gate(None, "status 503")
    fail(breaker)  # another call opens the circuit while this one waits to retry
    assert not gate(None, "status 503")
    clock.advance(5.0)
    probe = breaker.acquire(HOST)
    assert not breaker.gate(probe)(None, "read timeout")


# -- concurrency -----------------------------------------------------------------------------------------


def test_concurrent_failures_open_the_circuit_exactly_once(clock: Clock, events: list[StateChange]) -> None:
    breaker = make(clock, events, consecutive_failures=None, window_size=100, minimum_calls=100)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(50):
            try:
                permit = breaker.acquire(HOST)
            except CircuitOpenError:
                continue
            breaker.record(permit, error=requests.ConnectionError())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert transitions(events) == [("closed", "open")]
    assert events[0].reason == "failure rate 100% over the last 100 calls"


def test_concurrent_outcomes_are_all_counted(clock: Clock) -> None:
    breaker = make(
        clock, consecutive_failures=None, failure_rate_threshold=1.0, window_size=1000, minimum_calls=1000
    )

    def worker() -> None:
        for i in range(100):
            permit = breaker.acquire(HOST)
            if i % 4:
                breaker.record(permit, response=_response(200))
            else:
                breaker.record(permit, response=_response(503))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = breaker.state(HOST)
    assert (snapshot.calls, snapshot.failures) == (800, 200)


# -- through the session (``responses`` mocks: nothing reaches a socket) -----------------------------------


@responses.activate
def test_session_fast_fails_without_sending_and_recovers(clock: Clock, events: list[StateChange]) -> None:
    breaker = make(clock, events, consecutive_failures=3, open_wait=10.0)
    session = ResilientSession(breaker=breaker, retry=False)
    responses.add(responses.GET, URL, status=503)
    assert [session.get(URL).status_code for _ in range(3)] == [503, 503, 503]
    with pytest.raises(CircuitOpenError) as caught:
        session.get(URL, params={"api_key": "s3cret"})
    assert len(responses.calls) == 3
    assert caught.value.method == "GET"
    assert "s3cret" not in str(caught.value)
    assert caught.value.attempts == 0
    clock.advance(10.0)
    responses.replace(responses.GET, URL, status=200)
    assert session.get(URL).status_code == 200
    assert len(responses.calls) == 4
    assert transitions(events) == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


@responses.activate
def test_session_breaker_sees_one_outcome_per_call_after_retries(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=2)
    session = ResilientSession(breaker=breaker, retry=3)
    responses.add(responses.GET, URL, status=503)
    responses.add(responses.GET, URL, status=200)
    assert session.get(URL).status_code == 200  # 503 then 200: the call succeeded
    assert breaker.state(HOST).failures == 0
    assert breaker.state(HOST).calls == 1


@responses.activate
def test_a_probe_is_not_retried(clock: Clock) -> None:
    breaker = make(clock, consecutive_failures=1)
    session = ResilientSession(breaker=breaker, retry=3)
    responses.add(responses.GET, URL, status=503)
    session.get(URL)
    sent = len(responses.calls)
    assert sent == 4  # closed: the call used its retries
    clock.advance(5.0)
    assert session.get(URL).status_code == 503
    assert len(responses.calls) == sent + 1
    # A 503 is the route group's failure: its circuit reopened; the host's never opened.
    route = breaker.route_key_for(URL)
    assert route is not None and route.startswith(HOST + " ")
    assert breaker.state(route).state is CircuitState.OPEN
    assert breaker.state(HOST).state is CircuitState.CLOSED


@responses.activate
def test_the_breaker_is_on_by_default_and_off_when_asked() -> None:
    responses.add(responses.GET, URL, status=503)
    default = ResilientSession(retry=False)
    assert isinstance(default.breaker, CircuitBreaker)
    assert [default.get(URL).status_code for _ in range(5)] == [503] * 5
    with pytest.raises(CircuitOpenError):
        default.get(URL)
    off = ResilientSession(retry=False, breaker=False)
    assert off.breaker is None
    assert [off.get(URL).status_code for _ in range(20)] == [503] * 20


def test_a_pickled_session_keeps_one_shared_breaker_and_budget() -> None:
    session = ResilientSession(breaker=CircuitBreaker(open_wait=9.0))
    copy = pickle.loads(pickle.dumps(session))
    assert copy.breaker.open_wait == 9.0
    for prefix in ("http://", "https://"):
        adapter = copy.get_adapter(prefix + "x")
        breaker, budget, _ = adapter.policies(copy)
        assert breaker is copy.breaker
        assert budget is copy.budget
