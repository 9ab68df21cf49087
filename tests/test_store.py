"""The state-store interface, host keys, and the in-memory store."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from resilient_session.stores import MemoryStore, StateStore
from resilient_session.stores.base import AtomicOp, Result, host_key


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _add(state: Any, args: Sequence[float], now: float) -> tuple[Any, Result]:
    value = (state or 0.0) + args[0]
    return (None if value == 0 else value), (value, now)


ADD = AtomicOp("add", _add, "-- not used by the memory store")


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://api.example.com/v1/x?token=secret", "https://api.example.com:443"),
        ("HTTP://API.Example.COM/", "http://api.example.com:80"),
        ("http://api.example.com:8080/a", "http://api.example.com:8080"),
        ("https://user:pw@api.example.com/", "https://api.example.com:443"),
        ("http://[::1]:9000/a", "http://[::1]:9000"),
        ("http://127.0.0.1/", "http://127.0.0.1:80"),
    ],
)
def test_host_key_is_scheme_host_port_and_nothing_secret(url: str, key: str) -> None:
    assert host_key(url) == key


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
