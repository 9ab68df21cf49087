"""One shared thread that ends calls whose deadline passed, by shutting down the socket they wait on.

A read timeout bounds each ``recv``, not a response: a server that drips its status line, its headers or
its body a byte at a time never trips it. Clamping socket timeouts between reads cannot help either,
because ``http.client`` reads the headers in one call. So a call with a deadline registers here, its
connection pools tell the watchdog which connection the call is using, and when the deadline passes the
watchdog shuts that socket down: the blocked read returns at once and the call raises
:class:`~resilient_session.DeadlineExceededError`.

Calls without a deadline never come here. A call with one pays a heap push and two short lock holds per
attempt; the thread starts with the first such call, not at import, and ends a minute after the last
watched call returned (whatever deadline that call had).

Process models: a forked child gets a new lock and forgets the parent's thread and calls (see
:mod:`._fork`); when ``threading`` was monkey-patched (gevent, eventlet) after the lock was made, the next
call makes a lock of the new kind; a thread that died is started again by the next call; the thread is
never started while its lock is held; and an error in the thread is logged, never fatal to it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from . import _fork
from ._compat.stdlib import shutdown_socket

if TYPE_CHECKING:
    from ._call import CallState

log = logging.getLogger("resilient_session")


class Watchdog:
    """Shuts down the socket of a watched call once its deadline passes."""

    #: Seconds the thread waits after the last call ended before it ends (the next watched call
    #: restarts it).
    idle_exit: float = 60.0

    def __init__(self) -> None:
        self._factory = threading.Lock  # what made the lock: threading may be monkey-patched later
        self._lock = threading.Condition(self._factory())
        self._heap: list[tuple[float, int, CallState]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        #: Bumped whenever the thread must retire (new lock, fork): a thread serves one generation.
        self._generation = 0
        self._watched = 0  # calls between watch and unwatch
        self._active_at = 0.0  # when a call was last watched or unwatched
        self._tracked = False

    def watch(self, call: CallState) -> None:
        """Watch *call* until :meth:`unwatch`; call again after its deadline moved earlier."""
        at = call.deadline_at
        if at is None:
            return
        lock = self._lock if self._factory is threading.Lock else self._renew()
        starting = None
        with lock:
            if not call.watched:
                call.watched = True
                self._watched += 1
            self._active_at = time.monotonic()
            heapq.heappush(self._heap, (at, next(self._order), call))
            thread = self._thread
            # A thread never started has no ident yet: it is being started, not dead.
            if thread is None or (thread.ident is not None and not thread.is_alive()):
                starting = self._new_thread(lock)
            elif self._heap[0][2] is call:
                lock.notify()
        if starting is not None:
            # Outside the lock: under gevent, start() runs the new thread at once, and its first act
            # is to take the lock.
            self._start(starting, lock)

    def unwatch(self, call: CallState) -> None:
        """Stop watching *call*: its sockets are never touched again."""
        with self._lock:
            if not call.watched:
                return
            call.watched = False
            call.connection = None
            self._watched = max(0, self._watched - 1)  # never below 0, even for a call forked mid-way
            self._active_at = time.monotonic()
            if not self._watched:
                # Entries of finished calls would otherwise stay until their deadline, and keep the
                # thread up until then.
                self._heap.clear()
            elif len(self._heap) > 1024 and len(self._heap) > 2 * self._watched:
                # With long deadlines and many calls, keep only the calls in flight.
                self._heap = [entry for entry in self._heap if entry[2].watched]
                heapq.heapify(self._heap)

    def attach(self, call: CallState, connection: Any) -> None:
        """*call* now reads from *connection* (a urllib3 connection)."""
        with self._lock:
            if call.watched:
                call.connection = connection
                if call.expired:
                    self._shut(call, connection)

    def detach(self, call: CallState, connection: Any) -> None:
        """*connection* went back to its pool: it may serve another call now."""
        with self._lock:
            if call.connection is connection:
                call.connection = None

    def _renew(self) -> threading.Condition:
        # threading was monkey-patched after the lock was made. A real lock taken by a green thread
        # while another green thread holds it blocks the whole OS thread, so make one of the new kind;
        # a thread started on the old lock retires.
        old = self._lock
        with old:
            if self._lock is old:
                self._factory = threading.Lock
                self._lock = threading.Condition(self._factory())
                self._generation += 1
                self._thread = None
                old.notify_all()
        return self._lock

    def _new_thread(self, lock: threading.Condition) -> threading.Thread:
        if not self._tracked:
            self._tracked = True
            _fork.track(self)
        self._generation += 1
        self._thread = threading.Thread(
            target=self._run, args=(lock, self._generation), name="resilient-session-watchdog", daemon=True
        )
        return self._thread

    def _start(self, thread: threading.Thread, lock: threading.Condition) -> None:
        try:
            thread.start()
        except Exception:
            with lock:
                if self._thread is thread:
                    self._thread = None
            log.warning(
                "the deadline watchdog thread could not start; a call's deadline ends it between reads only",
                exc_info=True,
            )

    def _after_fork_in_child(self) -> None:
        # Only the forking thread lives on: the lock may be held by a thread that is gone, and the
        # watched calls are the parent's (their sockets are the parent's too: never shut them here).
        self._factory = threading.Lock
        self._lock = threading.Condition(self._factory())
        for _, _, call in self._heap:
            call.watched = False
            call.connection = None
        self._heap = []
        self._watched = 0
        self._thread = None
        self._generation += 1

    def _run(self, lock: threading.Condition, generation: int) -> None:
        with lock:
            while self._generation == generation and self._factory is threading.Lock:
                try:
                    if not self._step(lock):
                        return
                except Exception:  # never let one error end the watching of every later call
                    log.exception("the deadline watchdog hit an error and carries on")
                    lock.wait(0.05)

    def _step(self, lock: threading.Condition) -> bool:
        """Wait for or end the call with the earliest deadline; False when idle long enough to end."""
        heap = self._heap
        while heap and not heap[0][2].watched:
            heapq.heappop(heap)
        now = time.monotonic()  # the clock of CallState.deadline_at
        if not heap:
            idle = self._active_at + self.idle_exit - now
            if idle <= 0:
                self._thread = None
                return False
            lock.wait(idle)
            return True
        at, _, call = heap[0]
        if at > now:
            # Never longer than the idle interval: the calls may all end meanwhile.
            lock.wait(min(at - now, self.idle_exit))
            return True
        heapq.heappop(heap)
        deadline = call.deadline_at
        if deadline is not None and deadline > now:
            return True  # stale entry; never happens (deadlines only tighten), kept for safety
        call.expired = True
        if call.connection is not None:
            self._shut(call, call.connection)
        return True

    @staticmethod
    def _shut(call: CallState, connection: Any) -> None:
        try:
            _shut(connection)
        except Exception:
            log.warning(
                "the deadline watchdog could not shut down the socket of %s %s",
                call.method,
                call.url,
                exc_info=True,
            )


def _shut(connection: Any) -> None:
    shutdown_socket(getattr(connection, "sock", None))


#: The process's watchdog.
WATCHDOG = Watchdog()
