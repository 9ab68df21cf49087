"""One shared thread that ends calls whose deadline passed, by shutting down the socket they wait on.

A read timeout bounds each ``recv``, not a response: a server that drips its status line, its headers or
its body a byte at a time never trips it. Clamping socket timeouts between reads cannot help either,
because ``http.client`` reads the headers in one call. So a call with a deadline registers here, its
connection pools tell the watchdog which connection the call is using, and when the deadline passes the
watchdog shuts that socket down: the blocked read returns at once and the call raises
:class:`~resilient_session.DeadlineExceededError`.

Calls without a deadline never come here. A call with one pays a heap push and two short lock holds per
attempt; the thread starts with the first such call, not at import, and ends after a minute with
nothing to watch.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._call import CallState

#: Seconds the thread waits with nothing to watch before it ends (the next watched call restarts it).
_IDLE_EXIT = 60.0


class Watchdog:
    """Shuts down the socket of a watched call once its deadline passes."""

    def __init__(self) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, CallState]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stale = 0

    def watch(self, call: CallState) -> None:
        """Watch *call* until :meth:`unwatch`; call again after its deadline moved earlier."""
        at = call.deadline_at
        if at is None:
            return
        with self._lock:
            call.watched = True
            heapq.heappush(self._heap, (at, next(self._order), call))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="resilient-session-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is call:
                self._lock.notify()

    def unwatch(self, call: CallState) -> None:
        """Stop watching *call*: its sockets are never touched again."""
        if not call.watched:
            return
        with self._lock:
            call.watched = False
            call.connection = None
            self._stale += 1
            # Entries of finished calls leave the heap when their deadline comes; with long deadlines
            # and many calls, rebuild it now and then so it holds only calls in flight.
            if self._stale > 1024 and self._stale * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2].watched]
                heapq.heapify(self._heap)
                self._stale = 0

    def attach(self, call: CallState, connection: Any) -> None:
        """*call* now reads from *connection* (a urllib3 connection)."""
        with self._lock:
            if call.watched:
                call.connection = connection
                if call.expired:
                    _shut(connection)

    def detach(self, call: CallState, connection: Any) -> None:
        """*connection* went back to its pool: it may serve another call now."""
        with self._lock:
            if call.connection is connection:
                call.connection = None

    def _run(self) -> None:
        clock = time.monotonic  # the clock of CallState.deadline_at
        with self._lock:
            while True:
                while self._heap and not self._heap[0][2].watched:
                    heapq.heappop(self._heap)
                    self._stale = max(0, self._stale - 1)
                if not self._heap:
                    if not self._lock.wait(_IDLE_EXIT) and not self._heap:
                        self._thread = None
                        return
                    continue
                at, _, call = self._heap[0]
                now = clock()
                if at > now:
                    self._lock.wait(at - now)
                    continue
                heapq.heappop(self._heap)
                deadline = call.deadline_at
                if deadline is not None and deadline > now:
                    continue  # stale entry; never happens (deadlines only tighten), kept for safety
                call.expired = True
                if call.connection is not None:
                    _shut(call.connection)


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    # socket.socket's own shutdown, also for an SSLSocket: ssl's override drops its SSL object first,
    # which would race the reader in another thread. A socket already closed has nothing to end.
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


#: The process's watchdog.
WATCHDOG = Watchdog()
