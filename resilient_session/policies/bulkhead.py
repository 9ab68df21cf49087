"""Bulkhead: a cap on the calls in flight to one host, so a slow upstream cannot take every thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import requests

from .._options import Option, check_options
from ..errors import BulkheadFullError
from ..stores.base import host_key

__all__ = ["Bulkhead"]


class _Compartment:
    __slots__ = ("changed", "in_flight")

    def __init__(self) -> None:
        self.changed = threading.Condition(threading.Lock())
        self.in_flight = 0


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

    Thread-safe; share one instance between adapters and sessions to share the cap. Pickling or copying
    gives a bulkhead with the same settings and no calls in flight.
    """

    #: The plain-data options and what each accepts (the integrations file's ``bulkhead`` table).
    OPTIONS: ClassVar[dict[str, Option]] = {
        "max_concurrent": Option("integer", minimum=1),
        "max_wait": Option("number"),
        "name": Option("string", nullable=True),
    }

    def __init__(self, max_concurrent: int = 10, *, max_wait: float = 1.0, name: str | None = None) -> None:
        check_options(self.OPTIONS, {"max_concurrent": max_concurrent, "max_wait": max_wait, "name": name})
        self.max_concurrent = max_concurrent
        self.max_wait = max_wait
        self.name = name
        self._compartments: dict[str, _Compartment] = {}
        self._lock = threading.Lock()

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
        compartment = self._compartment(host)
        limit = self.max_concurrent
        with compartment.changed:
            if compartment.in_flight < limit:
                compartment.in_flight += 1
                return
            wait = self.max_wait if max_wait is None else max(0.0, min(max_wait, self.max_wait))
            waited = 0.0
            if wait > 0:
                started = time.monotonic()
                if compartment.changed.wait_for(lambda: compartment.in_flight < limit, wait):
                    compartment.in_flight += 1
                    return
                waited = time.monotonic() - started
        raise BulkheadFullError(
            f"{limit} calls to {host} already in flight; none finished within {waited:.3f}s",
            host=host,
            max_concurrent=limit,
            waited=waited,
            request=request,
        )

    def release(self, host: str) -> None:
        """Give back a slot taken by :meth:`acquire`."""
        compartment = self._compartment(host)
        with compartment.changed:
            if compartment.in_flight <= 0:
                raise RuntimeError(f"bulkhead released more often than acquired for {host}")
            compartment.in_flight -= 1
            compartment.changed.notify()

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
        compartment = self._compartments.get(host)
        return 0 if compartment is None else compartment.in_flight

    def _compartment(self, host: str) -> _Compartment:
        compartment = self._compartments.get(host)
        if compartment is None:
            with self._lock:
                compartment = self._compartments.setdefault(host, _Compartment())
        return compartment

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_concurrent={self.max_concurrent}, max_wait={self.max_wait}, "
            f"name={self.name!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_new_bulkhead, (self.max_concurrent, self.max_wait, self.name))


def _new_bulkhead(max_concurrent: int, max_wait: float, name: str | None) -> Bulkhead:
    return Bulkhead(max_concurrent, max_wait=max_wait, name=name)
