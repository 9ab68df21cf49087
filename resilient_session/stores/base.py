"""Where breaker and budget state lives: the store interface and the in-memory default.

A policy (:class:`~resilient_session.CircuitBreaker`, :class:`~resilient_session.RetryBudget`) keeps no
state itself. Every change is an :class:`AtomicOp`, a read-modify-write of one key written twice: in Python
for stores inside this process and in Lua for :class:`~resilient_session.RedisStore`, where the script runs
atomically on the server. The two versions are tested against each other, so a policy behaves the same
whether its state is local or shared by a fleet.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

__all__ = ["AtomicOp", "MemoryStore", "StateStore", "host_key"]

Result = tuple[float, ...]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_key(url: str) -> str:
    """The per-host scope of *url*: ``scheme://host:port``, lower-cased, default port filled in.

    Path, query and credentials never enter the key, so it is safe to log.
    """
    # Every call computes this: cut the origin off with string operations and parse each distinct
    # origin once (a process talks to few hosts, through many paths).
    start = url.find("://")
    if start < 0:
        return _origin_key(url)
    end = len(url)
    for mark in "/?#":
        found = url.find(mark, start + 3)
        if 0 <= found < end:
            end = found
    return _origin_key(url[:end])


@functools.lru_cache(maxsize=1024)
def _origin_key(origin: str) -> str:
    parts = urlsplit(origin)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class AtomicOp:
    """An atomic read-modify-write of the state under one key.

    ``apply(state, args, now)`` is the Python version: it receives the key's current state (``None`` when
    absent or expired, otherwise whatever ``apply`` returned last), the numeric *args* and the store's
    current time, and returns ``(new_state, result)``; a ``None`` state deletes the key. ``lua`` is the
    same operation for Redis: it reads ``KEYS[1]``, ``now``, ``ttl`` (seconds) and ``args`` (a table of
    numbers) and returns a list of numbers formatted with ``num()``. ``result`` is a tuple of floats.

    ``lua_files`` names Lua files shipped in ``resilient_session/stores/lua``, which run, in order, before
    ``lua``; the package's own ops keep all their Lua there. :attr:`source` is the whole script, read from
    the files on first use.
    """

    name: str
    apply: Callable[[Any, Sequence[float], float], tuple[Any, Result]]
    lua: str = ""
    lua_files: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """The op's Lua: its files' text, then :attr:`lua`."""
        return "".join(lua_file(name) for name in self.lua_files) + self.lua


@functools.cache
def lua_file(name: str) -> str:
    """The text of *name* in the package's ``stores/lua`` directory, read once."""
    return (resources.files(__package__) / "lua" / name).read_text(encoding="utf-8")


class StateStore(ABC):
    """Holds policy state by key and runs :class:`AtomicOp` on it atomically.

    ``clock`` is the time source every op sees (seconds, any epoch). ``ttl`` is how long a key may sit
    untouched before it is dropped, which returns it to its initial state (closed breaker, full budget);
    it must exceed the longest open wait of any breaker using the store.

    ``hints`` is a process-local, non-authoritative cache policies may use to skip the store entirely, for
    instance the time until which a breaker is known to be open. It is a plain dict: reads and writes of
    single keys are atomic, and a stale hint only ever delays a call that the store would have allowed.
    """

    clock: Callable[[], float]
    ttl: float
    hints: dict[str, float]

    @abstractmethod
    def run(self, op: AtomicOp, key: str, args: Sequence[float]) -> Result:
        """Apply *op* to the state under *key* atomically and return its result."""

    def forget_hints(self) -> None:
        """Drop every local hint (the next call of each policy asks the store itself)."""
        self.hints.clear()


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

    def clear(self) -> None:
        """Forget every key and hint: circuits close, budgets refill."""
        with self._lock:
            self._data.clear()
            self.hints.clear()

    def run(self, op: AtomicOp, key: str, args: Sequence[float]) -> Result:
        with self._lock:
            now = self.clock()
            entry = self._data.get(key)
            state = entry[0] if entry is not None and entry[1] > now else None
            state, result = op.apply(state, args, now)
            if state is None:
                self._data.pop(key, None)
            else:
                self._data[key] = (state, now + self.ttl)
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


def _new_memory_store(clock: Callable[[], float], ttl: float) -> MemoryStore:
    return MemoryStore(clock=clock, ttl=ttl)
