"""The watchdog ends a blocked read at the deadline and never touches a socket it was told to leave."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import SimpleNamespace

from resilient_session._call import CallState
from resilient_session._watchdog import Watchdog


def blocked_read(sock: socket.socket) -> tuple[threading.Thread, list[float]]:
    ended: list[float] = []

    def read() -> None:
        with contextlib.suppress(OSError):
            sock.recv(1)
        ended.append(time.monotonic())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, ended


def call_with_deadline(seconds: float) -> CallState:
    call = CallState.begin("GET", "http://127.0.0.1/x")
    call.tighten_deadline(seconds)
    return call


def test_the_socket_of_a_call_is_shut_down_at_its_deadline() -> None:
    watchdog = Watchdog()
    ours, theirs = socket.socketpair()
    call = call_with_deadline(0.2)
    watchdog.watch(call)
    watchdog.attach(call, SimpleNamespace(sock=ours))
    started = time.monotonic()
    thread, ended = blocked_read(ours)
    thread.join(2)
    assert ended and 0.15 < ended[0] - started < 0.3
    assert call.expired
    ours.close()
    theirs.close()


def test_a_detached_or_unwatched_socket_is_left_alone() -> None:
    watchdog = Watchdog()
    for leave in ("detach", "unwatch"):
        ours, theirs = socket.socketpair()
        connection = SimpleNamespace(sock=ours)
        call = call_with_deadline(0.1)
        watchdog.watch(call)
        watchdog.attach(call, connection)
        if leave == "detach":
            watchdog.detach(call, connection)  # back in its pool: another call may be using it
        else:
            watchdog.unwatch(call)  # the call returned; a streamed body is the caller's now
        time.sleep(0.25)
        theirs.sendall(b"x")
        assert ours.recv(1) == b"x"  # still open
        ours.close()
        theirs.close()


def test_a_tightened_deadline_is_watched_from_then_on() -> None:
    watchdog = Watchdog()
    ours, theirs = socket.socketpair()
    call = call_with_deadline(5.0)
    watchdog.watch(call)
    watchdog.attach(call, SimpleNamespace(sock=ours))
    call.deadline_at = time.monotonic() + 0.1  # what tighten_deadline does, then re-registers
    watchdog.watch(call)
    thread, ended = blocked_read(ours)
    thread.join(2)
    assert ended and call.expired
    ours.close()
    theirs.close()


def test_the_thread_starts_with_the_first_watched_call_only() -> None:
    watchdog = Watchdog()
    assert watchdog._thread is None  # nothing at construction (and so nothing at import)
    watchdog.watch(CallState.begin("GET", "http://127.0.0.1/"))  # no deadline: not watched
    assert watchdog._thread is None
    call = call_with_deadline(1.0)
    watchdog.watch(call)
    assert watchdog._thread is not None
    # mypy keeps watchdog._thread narrowed to None across watch(), so it takes this line for unreachable.
    watchdog.unwatch(call)  # type: ignore[unreachable]
