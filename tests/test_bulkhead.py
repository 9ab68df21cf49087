"""Bulkhead: the cap on calls in flight per host."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import os
import pickle
import signal
import threading
import time
import warnings
from collections.abc import Callable

import pytest
import requests
import responses

from resilient_session import APIError, Bulkhead, BulkheadFullError, ResilientSession, _fork
from resilient_session.policies import BulkheadSlots

HOST = "https://api.example.com:443"
URL = "https://api.example.com/v1/items"


def test_calls_beyond_the_cap_are_refused_at_once_with_max_wait_zero() -> None:
    bulkhead = Bulkhead(2, max_wait=0)
    bulkhead.acquire(HOST)
    bulkhead.acquire(HOST)
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire(HOST)
    error = caught.value
    assert isinstance(error, APIError) and isinstance(error, requests.ConnectionError)
    assert (error.host, error.max_concurrent, error.waited) == (HOST, 2, 0.0)
    assert bulkhead.in_flight(HOST) == 2


def test_a_released_slot_can_be_taken_again() -> None:
    bulkhead = Bulkhead(1, max_wait=0)
    bulkhead.acquire(HOST)
    bulkhead.release(HOST)
    bulkhead.acquire(HOST)
    assert bulkhead.in_flight(HOST) == 1


def test_a_waiting_call_gets_the_slot_a_finishing_call_frees() -> None:
    bulkhead = Bulkhead(1, max_wait=30)
    bulkhead.acquire(HOST)
    got_slot = threading.Event()

    def waiter() -> None:
        bulkhead.acquire(HOST)
        got_slot.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not got_slot.is_set()
    bulkhead.release(HOST)
    thread.join(timeout=10)
    assert got_slot.is_set()
    assert bulkhead.in_flight(HOST) == 1


def test_the_wait_is_bounded() -> None:
    bulkhead = Bulkhead(1, max_wait=0.02)
    bulkhead.acquire(HOST)
    started = time.monotonic()
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire(HOST)
    assert caught.value.waited >= 0.02
    assert time.monotonic() - started < 1.0


def test_a_call_waits_no_longer_than_the_bulkhead_allows() -> None:
    bulkhead = Bulkhead(1, max_wait=0.0)
    bulkhead.acquire(HOST)
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire(HOST, max_wait=30.0)  # the bulkhead's own limit caps what a call asks
    assert caught.value.waited < 1.0


def test_a_call_whose_deadline_has_passed_does_not_wait() -> None:
    bulkhead = Bulkhead(1, max_wait=30.0)
    bulkhead.acquire(HOST)
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire(HOST, max_wait=-0.5)
    assert caught.value.waited < 1.0


def test_hosts_have_separate_compartments_unless_named() -> None:
    bulkhead = Bulkhead(1, max_wait=0)
    bulkhead.acquire(bulkhead.key_for("https://a.example.com/"))
    bulkhead.acquire(bulkhead.key_for("https://b.example.com/"))
    named = Bulkhead(1, max_wait=0, name="erp")
    named.acquire(named.key_for("https://a.example.com/"))
    with pytest.raises(BulkheadFullError):
        named.acquire(named.key_for("https://b.example.com/"))


def test_releasing_more_than_acquired_is_a_bug_reported_loudly() -> None:
    with pytest.raises(RuntimeError):
        Bulkhead().release(HOST)


def test_slot_context_manager_releases_on_error() -> None:
    bulkhead = Bulkhead(1, max_wait=0)
    with pytest.raises(KeyError), bulkhead.slot(HOST):
        assert bulkhead.in_flight(HOST) == 1
        raise KeyError("boom")
    assert bulkhead.in_flight(HOST) == 0


def test_concurrency_never_exceeds_the_cap() -> None:
    bulkhead = Bulkhead(3, max_wait=30)
    lock = threading.Lock()
    in_flight = 0
    peak = 0
    start = threading.Barrier(12)

    def worker() -> None:
        nonlocal in_flight, peak
        start.wait()
        for _ in range(200):
            with bulkhead.slot(HOST):
                with lock:
                    in_flight += 1
                    peak = max(peak, in_flight)
                with lock:
                    in_flight -= 1

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= peak <= 3
    assert bulkhead.in_flight(HOST) == 0


def test_pickling_keeps_the_settings_and_drops_the_calls_in_flight() -> None:
    bulkhead = Bulkhead(4, max_wait=0.5, name="crm")
    bulkhead.acquire("crm")
    copy = pickle.loads(pickle.dumps(bulkhead))
    assert (copy.max_concurrent, copy.max_wait, copy.name) == (4, 0.5, "crm")
    assert copy.in_flight("crm") == 0
    assert repr(copy) == "Bulkhead(max_concurrent=4, max_wait=0.5, name='crm')"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Bulkhead(0)
    with pytest.raises(ValueError):
        Bulkhead(1, max_wait=-1)


# -- through the session ------------------------------------------------------------------------------


@responses.activate
def test_a_full_bulkhead_refuses_before_sending_and_slots_come_back() -> None:
    bulkhead = Bulkhead(1, max_wait=0)
    session = ResilientSession(bulkhead=bulkhead, retry=False)
    responses.add(responses.GET, URL, status=200)
    responses.add(responses.GET, URL, body=requests.ConnectionError("reset"))
    assert session.get(URL).status_code == 200
    with pytest.raises(requests.ConnectionError):
        session.get(URL)
    assert bulkhead.in_flight(HOST) == 0  # released after a success and after a failure
    bulkhead.acquire(HOST)  # another thread's call in flight
    with pytest.raises(BulkheadFullError) as caught:
        session.get(URL)
    assert caught.value.method == "GET"
    assert len(responses.calls) == 2
    assert bulkhead.in_flight(HOST) == 1


# -- one model: an immutable policy, its state apart ----------------------------------------------------


def test_the_policy_is_immutable_and_new_keeps_the_slots() -> None:
    bulkhead = Bulkhead(1, max_wait=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bulkhead.max_concurrent = 5  # type: ignore[misc]
    bulkhead.acquire(HOST)
    wider = bulkhead.new(max_concurrent=2)
    assert (wider.max_concurrent, bulkhead.max_concurrent) == (2, 1)
    assert wider.in_flight(HOST) == 1  # the same calls in flight: the copy shares the state
    wider.acquire(HOST)
    with pytest.raises(BulkheadFullError):
        wider.acquire(HOST)
    fresh = bulkhead.new(slots=BulkheadSlots())
    assert fresh.in_flight(HOST) == 0


def test_two_bulkheads_on_one_slots_object_share_one_cap() -> None:
    slots = BulkheadSlots()
    first, second = Bulkhead(1, max_wait=0, slots=slots), Bulkhead(1, max_wait=0, slots=slots)
    first.acquire(HOST)
    with pytest.raises(BulkheadFullError):
        second.acquire(HOST)


class SteppingClock:
    """A clock that moves *step* seconds each time it is read, so waits end without real time passing."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_wait_is_measured_on_the_slots_clock() -> None:
    bulkhead = Bulkhead(1, max_wait=10.0, slots=BulkheadSlots(clock=SteppingClock(10.0)))
    bulkhead.acquire(HOST)
    started = time.monotonic()
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire(HOST)
    # The wait began at 10 and was over at the next reading, 20: by that clock, 10 s waited.
    assert caught.value.waited == 10.0
    assert time.monotonic() - started < 5.0  # and no real wait of max_wait


class FakeTime:
    """A clock and a slot wait on it: waiting moves the clock on at once, and no slot comes back."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, condition: threading.Condition, timeout: float) -> bool:
        self.waits.append(timeout)
        self.now += timeout
        return False


def test_a_full_wait_takes_no_real_time_on_a_fake_clock() -> None:
    fake = FakeTime()
    bulkhead = Bulkhead(1, max_wait=30.0, slots=BulkheadSlots(clock=fake, wait=fake.wait))
    bulkhead.acquire(HOST)
    started = time.monotonic()
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire(HOST, max_wait=2.5)  # the call's deadline leaves 2.5 s
    assert caught.value.waited == 2.5 and fake.waits == [2.5]
    assert time.monotonic() - started < 1.0


def test_copies_start_empty_on_the_same_clock() -> None:
    fake = FakeTime()
    bulkhead = Bulkhead(1, max_wait=0, slots=BulkheadSlots(clock=fake, wait=fake.wait))
    bulkhead.acquire(HOST)
    for copy_ in (copy.copy(bulkhead), copy.deepcopy(bulkhead)):
        assert copy_.in_flight(HOST) == 0 and copy_.slots is not bulkhead.slots
        assert isinstance(copy_.slots.clock, FakeTime)  # deepcopy copies the clock too
    assert copy.copy(bulkhead).slots.clock is fake


def test_a_pickle_from_before_the_slots_still_loads() -> None:
    # What 0.1.0 pickled: resilient_session.bulkhead._new_bulkhead(max_concurrent, max_wait, name).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the old path warns on first import only
        old_module = importlib.import_module("resilient_session.bulkhead")
    restored = old_module._new_bulkhead(4, 0.5, "crm")
    assert (restored.max_concurrent, restored.max_wait, restored.name) == (4, 0.5, "crm")
    assert restored.in_flight("crm") == 0


# -- after os.fork() ---------------------------------------------------------------------------------


def in_forked_child(check: Callable[[], bool], timeout: float = 10.0) -> str:
    """Run *check* in a child forked now: "ok", "failed", or "hung" (killed after *timeout*)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code only
        code = 1
        try:
            code = 0 if check() else 1
        finally:
            os._exit(code)
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_with_every_slot_taken_starts_with_every_slot_free() -> None:
    bulkhead = Bulkhead(2, max_wait=0)
    bulkhead.acquire(HOST)
    bulkhead.acquire(HOST)

    def child() -> bool:
        bulkhead.acquire(HOST)
        bulkhead.acquire(HOST)
        try:
            bulkhead.acquire(HOST)  # the cap still holds in the child
        except BulkheadFullError:
            return bulkhead.in_flight(HOST) == 2
        return False

    assert in_forked_child(child) == "ok"
    assert bulkhead.in_flight(HOST) == 2  # the parent's calls are still the parent's
    with pytest.raises(BulkheadFullError):
        bulkhead.acquire(HOST)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_a_thread_holds_a_compartment_lock_does_not_hang() -> None:
    bulkhead = Bulkhead(1, max_wait=0)
    bulkhead.acquire(HOST)
    bulkhead.release(HOST)
    compartment = bulkhead.slots._compartments[HOST]
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:  # a parent thread inside the compartment's lock at the moment of the fork
        with compartment.changed:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(2)
    try:
        assert in_forked_child(lambda: bulkhead.slot(HOST).__enter__() is None) == "ok"
    finally:
        release.set()
        holder.join()


def test_slots_are_registered_for_fork_on_first_use_only() -> None:
    slots = BulkheadSlots()
    assert slots not in _fork._objects
    slots.take(HOST, 1, 0)
    assert slots in _fork._objects
    slots._after_fork_in_child()
    assert slots.in_flight(HOST) == 0
