"""Bulkhead: a cap on the calls in flight to one host, so a slow upstream cannot take every thread."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

import requests

from .. import _fork
from .._hosts import host_key
from .._options import Option, check_attributes
from ..errors import BulkheadFullError

__all__ = ["Bulkhead", "BulkheadSlots"]


class _Compartment:
    __slots__ = ("changed", "in_flight")

    def __init__(self) -> None:
        self.changed = threading.Condition(threading.Lock())
        self.in_flight = 0


class BulkheadSlots:
    """The calls in flight per compartment, in this process: a bulkhead's state.

    A waiting call sleeps on a condition variable until a slot frees up, so this state cannot live in a
    shared store: a bulkhead caps one process (across a fleet, the retry budget and the circuit breaker
    coordinate). ``clock`` measures the waits (``time.monotonic``); ``wait(condition, timeout)`` is how a
    call waits for a slot (``threading.Condition.wait``: True when woken, False on timeout). A test may
    give both, so that waits take no real time.

    Thread-safe. Pickling or copying gives empty slots: calls in flight belong to the live process. For
    the same reason a child forked while calls were in flight starts with every slot free.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Condition, float], bool] = threading.Condition.wait,
    ) -> None:
        self.clock = clock
        self.wait = wait
        self._compartments: dict[str, _Compartment] = {}
        self._lock = threading.Lock()

    def take(self, key: str, limit: int, wait: float) -> float | None:
        """Take a slot of *key* if fewer than *limit* are taken, waiting up to *wait* seconds for one.

        :returns: ``None`` when a slot was taken, else the seconds waited in vain.
        """
        compartment = self._compartment(key)
        with compartment.changed:
            if compartment.in_flight < limit:
                compartment.in_flight += 1
                return None
            if wait <= 0:
                return 0.0
            started = self.clock()
            timed_out = False
            while compartment.in_flight >= limit:
                waited = self.clock() - started
                if timed_out or waited >= wait:
                    return waited
                timed_out = not self.wait(compartment.changed, wait - waited)
            compartment.in_flight += 1
            return None

    def give_back(self, key: str) -> None:
        """Return a slot of *key* taken by :meth:`take`."""
        compartment = self._compartment(key)
        with compartment.changed:
            if compartment.in_flight <= 0:
                raise RuntimeError(f"bulkhead released more often than acquired for {key}")
            compartment.in_flight -= 1
            compartment.changed.notify()

    def in_flight(self, key: str) -> int:
        """Slots of *key* taken now."""
        compartment = self._compartments.get(key)
        return 0 if compartment is None else compartment.in_flight

    def _compartment(self, key: str) -> _Compartment:
        compartment = self._compartments.get(key)
        if compartment is None:
            with self._lock:
                if not self._compartments:
                    _fork.track(self)  # first use: nothing to reset before
                compartment = self._compartments.setdefault(key, _Compartment())
        return compartment

    def _after_fork_in_child(self) -> None:
        # The calls holding slots ran in the parent's other threads, which do not exist here: they will
        # never give their slots back, and a compartment's lock may have been held by one of them.
        self._lock = threading.Lock()
        self._compartments = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def emptied(self) -> BulkheadSlots:
        """Slots on the same clock and wait, with no calls in flight (what a copy or a pickle gets)."""
        return BulkheadSlots(clock=self.clock, wait=self.wait)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_new_slots, (self.clock, self.wait))


def _new_slots(
    clock: Callable[[], float], wait: Callable[[threading.Condition, float], bool]
) -> BulkheadSlots:
    return BulkheadSlots(clock=clock, wait=wait)


@dataclass(frozen=True, repr=False)
class Bulkhead:
    """At most ``max_concurrent`` calls in flight per host in this process.

    A call beyond the cap waits up to ``max_wait`` seconds for a slot (less if the call's deadline ends
    sooner), then fails with :class:`~resilient_session.BulkheadFullError` without opening a socket.
    Slots are counted per process: across a fleet, the retry budget and circuit breaker coordinate.

    :param max_concurrent: Calls in flight per host. Default 10 (requests' connection pool size, so the
        pool never has to open connections it will throw away).
    :param max_wait: Seconds a call may wait for a slot. Default 1; 0 fails at once.
    :param name: ``None`` (default) caps each ``scheme://host:port`` separately; a name gives every call
        through this bulkhead one shared cap.
    :param slots: Where the calls in flight are counted: a private :class:`BulkheadSlots` by default
        (give one ``BulkheadSlots(clock=...)`` to measure waits on another clock).

    The policy is immutable and safe to share between threads, adapters and sessions, which then share
    the cap; :meth:`new` returns a changed copy that keeps the slots. Pickling or copying gives a
    bulkhead with the same settings and no calls in flight.
    """

    max_concurrent: int = 10
    _: KW_ONLY
    max_wait: float = 1.0
    name: str | None = None
    slots: BulkheadSlots = field(default_factory=BulkheadSlots)

    #: The plain-data options and what each accepts (the integrations file's ``bulkhead`` table).
    OPTIONS: ClassVar[dict[str, Option]] = {
        "max_concurrent": Option("integer", minimum=1),
        "max_wait": Option("number"),
        "name": Option("string", nullable=True),
    }

    def __post_init__(self) -> None:
        check_attributes(self)

    def new(self, **changes: Any) -> Bulkhead:
        """A copy with *changes* applied (the slots are kept unless given)."""
        return dataclasses.replace(self, **changes)

    def key_for(self, url: str) -> str:
        """The compartment a call to *url* uses: the bulkhead's name, or ``scheme://host:port``."""
        return self.name if self.name is not None else host_key(url)

    def acquire(
        self,
        host: str,
        request: requests.PreparedRequest | None = None,
        *,
        max_wait: float | None = None,
    ) -> None:
        """Take a slot for *host*, waiting up to *max_wait* (default and cap: the bulkhead's own).

        Pair every successful call with :meth:`release`.

        :raises BulkheadFullError: no slot freed up in time.
        """
        wait = self.max_wait if max_wait is None else max(0.0, min(max_wait, self.max_wait))
        waited = self.slots.take(host, self.max_concurrent, wait)
        if waited is None:
            return
        raise BulkheadFullError(
            f"{self.max_concurrent} calls to {host} already in flight; none finished within {waited:.3f}s",
            host=host,
            max_concurrent=self.max_concurrent,
            waited=waited,
            request=request,
        )

    def release(self, host: str) -> None:
        """Give back a slot taken by :meth:`acquire`."""
        self.slots.give_back(host)

    @contextmanager
    def slot(self, host: str, *, max_wait: float | None = None) -> Iterator[None]:
        """``with bulkhead.slot(host): ...`` holds a slot for the block."""
        self.acquire(host, max_wait=max_wait)
        try:
            yield
        finally:
            self.release(host)

    def in_flight(self, host: str) -> int:
        """Calls to *host* holding a slot now."""
        return self.slots.in_flight(host)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_concurrent={self.max_concurrent}, max_wait={self.max_wait}, "
            f"name={self.name!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_new_bulkhead, (self.max_concurrent, self.max_wait, self.name, self.slots.emptied()))


def _new_bulkhead(
    max_concurrent: int, max_wait: float, name: str | None, slots: BulkheadSlots | None = None
) -> Bulkhead:
    # Pickles made before the slots existed pass three arguments.
    return Bulkhead(
        max_concurrent, max_wait=max_wait, name=name, slots=BulkheadSlots() if slots is None else slots
    )
