"""The in-memory store: policy state kept in this process, the default of every policy."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .. import _fork
from .base import AtomicOp, Result, StateStore

__all__ = ["MemoryStore", "clear_memory_stores", "default_store"]


# Every MemoryStore alive in this process, so a test runner can start each test from a clean slate.
_live_memory_stores: weakref.WeakSet[MemoryStore] = weakref.WeakSet()


def clear_memory_stores() -> None:
    """Clear every in-memory store in this process (the pytest plugin does this between tests)."""
    for store in list(_live_memory_stores):
        store.clear()


class MemoryStore(StateStore):
    """State kept in this process, guarded by one lock; the default store.

    :param clock: time source; ``time.monotonic`` unless a test injects its own.
    :param ttl: seconds an untouched key lives (default one hour).

    Pickling or copying a session gives a new, empty store: breaker state is about the live process.
    The process-wide :func:`default_store` is the exception: its copies are the receiving process's own.
    """

    _SWEEP_EVERY = 4096

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, ttl: float = 3600.0) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.clock = clock
        self.ttl = ttl
        self.hints = {}
        self._data: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()
        self._ops = 0
        _live_memory_stores.add(self)
        _fork.track(self)

    def clear(self) -> None:
        """Forget every key and hint: circuits close, budgets refill."""
        with self._lock:
            self._data.clear()
            self.hints.clear()

    def run(self, op: AtomicOp, key: str, args: Sequence[float]) -> Result:
        with self._lock:
            data = self._data
            now = self.clock()
            entry = data.get(key)
            state = entry[0] if entry is not None and entry[1] > now else None
            state, result = op.apply(state, args, now)
            if state is not None:
                data[key] = (state, now + self.ttl)
            elif entry is not None:
                del data[key]
            self._ops += 1
            if self._ops % self._SWEEP_EVERY == 0:
                self._sweep(now)
            return result

    def _sweep(self, now: float) -> None:
        # Bounds memory for processes that call many distinct hosts over their lifetime.
        for key in [k for k, (_, expires) in self._data.items() if expires <= now]:
            del self._data[key]

    def __len__(self) -> int:
        with self._lock:
            now = self.clock()
            return sum(1 for _, expires in self._data.values() if expires > now)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ttl={self.ttl!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_new_memory_store, (self.clock, self.ttl))

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held the lock at the fork; in the child nobody would release it.
        self._lock = threading.Lock()


class _ProcessStore(MemoryStore):
    """The process-wide store: pickled, it unpickles as the receiving process's own."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (default_store, ())

    def __repr__(self) -> str:
        return "default_store()"

    def _after_fork_in_child(self) -> None:
        # Its circuits and budgets describe the parent's calls: the child starts with a fresh, empty store.
        super()._after_fork_in_child()
        self._data.clear()
        self.hints.clear()


_default: _ProcessStore | None = None
_default_lock = threading.Lock()


def default_store() -> MemoryStore:
    """The process-wide :class:`MemoryStore` every policy uses when it is given no store.

    Created on first use. Every breaker and budget built without ``store=`` keeps its state here, keyed by
    origin (or by the policy's ``name``), so sessions made per call, per thread or per request share one
    circuit and one budget per upstream. A child process made by ``os.fork()`` starts with it empty.
    """
    global _default
    store = _default
    if store is None:
        with _default_lock:
            if _default is None:
                _default = _ProcessStore()  # tracked for fork like every MemoryStore
            store = _default
    return store


def _new_memory_store(clock: Callable[[], float], ttl: float) -> MemoryStore:
    return MemoryStore(clock=clock, ttl=ttl)
