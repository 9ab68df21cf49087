"""The store interface: where breaker and budget state lives, and the atomic operations run on it.

A policy (:class:`~resilient_session.CircuitBreaker`, :class:`~resilient_session.RetryBudget`) keeps no
state itself. Every change is an :class:`AtomicOp`, a read-modify-write of one key written twice: in Python
for stores inside this process and in Lua for :class:`~resilient_session.RedisStore`, where the script runs
atomically on the server. The two versions are tested against each other, so a policy behaves the same
whether its state is local or shared by a fleet.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

__all__ = ["AtomicOp", "OpSteps", "Result", "StateStore", "arun_steps", "lua_file", "run_steps"]

Result = tuple[float, ...]

_T = TypeVar("_T")

#: A policy's step that needs the store: a generator yielding ``(op, key, args)`` for each op, receiving
#: its result, and returning the step's value. Written once, it is driven by :func:`run_steps` (a
#: thread's call) or by :func:`arun_steps` (a task's, which never blocks its event loop).
OpSteps = Generator[tuple["AtomicOp", str, Sequence[float]], Result, _T]


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

    async def arun(self, op: AtomicOp, key: str, args: Sequence[float]) -> Result:
        """:meth:`run` for a task: a store in this process answers at once (no I/O to wait for); a
        store across the network (:class:`~resilient_session.RedisStore`) awaits its answer."""
        return self.run(op, key, args)

    def forget_hints(self) -> None:
        """Drop every local hint (the next call of each policy asks the store itself)."""
        self.hints.clear()


def run_steps(store: StateStore, steps: OpSteps[_T]) -> _T:
    """Drive *steps* with ``store.run``: the value it returns."""
    try:
        op, key, args = next(steps)
        while True:
            op, key, args = steps.send(store.run(op, key, args))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun_steps(store: StateStore, steps: OpSteps[_T]) -> _T:
    """Drive *steps* with ``await store.arun``: the value it returns."""
    try:
        op, key, args = next(steps)
        while True:
            op, key, args = steps.send(await store.arun(op, key, args))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    # host_key is not a store concept; it moved to resilient_session._hosts (public as stores.host_key).
    if name in ("host_key", "_origin_key", "_DEFAULT_PORTS"):
        import warnings

        from .. import _hosts

        warnings.warn(
            f"resilient_session.stores.base.{name} moved; import host_key from resilient_session.stores",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_hosts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
