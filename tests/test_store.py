"""The state-store interface and the in-memory store."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

import pytest
import requests

from resilient_session.stores import MemoryStore, StateStore
from resilient_session.stores.base import AtomicOp, Result


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _add(state: Any, args: Sequence[float], now: float) -> tuple[Any, Result]:
    value = (state or 0.0) + args[0]
    return (None if value == 0 else value), (value, now)


ADD = AtomicOp("add", _add, "-- not used by the memory store")


def test_memory_store_is_a_state_store_with_hints() -> None:
    store = MemoryStore()
    assert isinstance(store, StateStore)
    store.hints["x"] = 1.0
    store.forget_hints()
    assert store.hints == {}


def test_ops_see_the_previous_state_and_the_store_clock() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert store.run(ADD, "k", (2.0,)) == (2.0, 0.0)
    clock.now = 5.0
    assert store.run(ADD, "k", (3.0,)) == (5.0, 5.0)
    assert store.run(ADD, "other", (1.0,)) == (1.0, 5.0)


def test_a_none_state_deletes_the_key() -> None:
    store = MemoryStore()
    store.run(ADD, "k", (2.0,))
    assert len(store) == 1
    store.run(ADD, "k", (-2.0,))
    assert len(store) == 0


def test_keys_expire_after_ttl_untouched_and_each_op_renews_them() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock, ttl=10.0)
    store.run(ADD, "k", (1.0,))
    clock.now = 9.0
    assert store.run(ADD, "k", (1.0,))[0] == 2.0  # renewed until 19
    clock.now = 18.9
    assert store.run(ADD, "k", (0.0,))[0] == 2.0
    clock.now = 28.9
    assert store.run(ADD, "k", (1.0,))[0] == 1.0  # expired: started over


def test_expired_keys_are_swept() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock, ttl=1.0)
    for i in range(100):
        store.run(ADD, f"host-{i}", (1.0,))
    clock.now = 2.0
    for _ in range(MemoryStore._SWEEP_EVERY):
        store.run(ADD, "busy", (1.0,))
    assert len(store._data) == 1


def test_no_update_is_lost_under_concurrency() -> None:
    store = MemoryStore()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(2000):
            store.run(ADD, "k", (1.0,))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.run(ADD, "k", (0.0,))[0] == 16000.0


def test_pickling_gives_an_empty_store_with_the_same_settings() -> None:
    store = MemoryStore(ttl=42.0)
    store.run(ADD, "k", (1.0,))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.ttl == 42.0
    assert len(copy) == 0
    assert repr(copy) == "MemoryStore(ttl=42.0)"


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemoryStore(ttl=0)


# -- a store of one's own (docs/failure-guide.md, "A store of your own") ----------------------------------


class DictStore(StateStore):
    """The custom store the failure guide shows: a dict and a lock, nothing from the package but the
    interface."""

    def __init__(self, clock: Clock, ttl: float = 3600.0) -> None:
        self.clock, self.ttl, self.hints = clock, ttl, {}
        self._data: dict[str, tuple[object, float]] = {}
        self._lock = threading.Lock()

    def run(self, op: AtomicOp, key: str, args: Sequence[float]) -> Result:
        with self._lock:
            now = self.clock()
            state, expires = self._data.get(key, (None, now))
            state, result = op.apply(state if expires > now else None, args, now)
            if state is None:
                self._data.pop(key, None)
            else:
                self._data[key] = (state, now + self.ttl)
            return result


def _outage_story(store: StateStore, clock: Clock) -> list[Any]:
    """Drive a breaker and a budget through an outage and a recovery; what each step answered."""
    from resilient_session import CircuitBreaker, CircuitOpenError, RetryBudget

    breaker = CircuitBreaker(store=store, consecutive_failures=3, open_wait=5)
    budget = RetryBudget(store=store, capacity=20, retry_cost=5)
    host = "https://api.example.com:443"
    seen: list[Any] = []

    def call(failed: bool) -> None:
        try:
            permit = breaker.acquire(host)
        except CircuitOpenError as exc:
            seen.append(("refused", round(exc.retry_in, 3)))
            return
        breaker.record(permit, error=requests.ConnectionError("down") if failed else None)
        seen.append(("probe" if permit.probe else "sent", breaker.state(host).state.value))

    for _ in range(5):
        call(failed=True)
        seen.append(("retry granted", budget.try_retry(host), budget.available(host)))
    clock.now += 5.0
    call(failed=True)  # the probe fails: open again, for longer
    clock.now += 4.0
    call(failed=False)  # still open
    clock.now += 6.0
    call(failed=False)  # the probe succeeds: closed
    budget.record_success(host, last_retry_cost=5)
    seen.append(("budget", budget.available(host)))
    clock.now += 3601.0  # untouched for longer than ttl: the keys are gone, the bucket full again
    seen.append(("after ttl", budget.available(host), breaker.state(host).state.value))
    return seen


def test_a_custom_store_drives_the_policies_exactly_as_the_memory_store_does() -> None:
    memory_clock, custom_clock = Clock(), Clock()
    expected = _outage_story(MemoryStore(clock=memory_clock), memory_clock)
    assert _outage_story(DictStore(custom_clock), custom_clock) == expected
    # The story means something: the circuit opened, refused, probed, closed; the budget ran dry.
    kinds = [step[0] for step in expected]
    assert "refused" in kinds and "probe" in kinds
    assert ("retry granted", False, 0.0) in expected
    assert expected[-1] == ("after ttl", 20.0, "closed")


def test_the_store_package_exports_what_a_custom_store_needs() -> None:
    import resilient_session.stores as stores

    needed = {"StateStore", "AtomicOp", "Result", "host_key", "MemoryStore", "RedisStore"}
    assert needed <= set(stores.__all__)
    assert all(hasattr(stores, name) for name in stores.__all__)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("shared", [False, True], ids=["own store", "default_store()"])
def test_a_child_forked_while_a_thread_holds_a_memory_store_lock_does_not_hang(shared: bool) -> None:
    """The thread holding the lock does not exist in the child: the child gets a lock of its own. A store
    of one's own keeps its state; the process-wide store starts empty (its state is the parent's calls)."""
    script = f"""
import os, sys, threading, time
from resilient_session.stores import MemoryStore, default_store
from resilient_session.policies import CircuitBreaker
import requests
store = default_store() if {shared!r} else MemoryStore()
breaker = CircuitBreaker(store=store, consecutive_failures=1, failure_rate_threshold=None)
breaker.record(breaker.acquire("http://127.0.0.1:9"), error=requests.ConnectionError("down"))
holding, release = threading.Event(), threading.Event()
def hold():
    with store._lock:
        holding.set()
        release.wait()
threading.Thread(target=hold, daemon=True).start()
holding.wait()
pid = os.fork()
if pid == 0:
    signal_ok = breaker.state("http://127.0.0.1:9").state.value
    os.write(1, (signal_ok + "\\n").encode())
    os._exit(0)
release.set()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == ["closed" if shared else "open"]
