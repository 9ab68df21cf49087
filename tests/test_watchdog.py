"""The watchdog ends a blocked read at the deadline and never touches a socket it was told to leave."""

from __future__ import annotations

import _thread
import contextlib
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

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
    thread, ended = blocked_read(ours)
    thread.join(2)
    # Measured from the deadline itself, with room for scheduling on a busy machine.
    assert call.deadline_at is not None
    assert ended and call.deadline_at <= ended[0] < call.deadline_at + 0.5
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


# -- process models: wrapped sockets, errors, dead threads, idle exit, patched threading, fork ---------


class _Broken:
    """A socket wrapper of no known kind whose shutdown fails."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def shutdown(self, how: int) -> None:
        raise self.error


def _pyopenssl(sock: socket.socket) -> object:
    from urllib3.contrib.pyopenssl import WrappedSocket

    return WrappedSocket(None, sock)  # type: ignore[arg-type]  # the TLS connection plays no part


WRAPPERS = {
    "eventlet GreenSocket (.fd)": lambda sock: SimpleNamespace(fd=sock),
    "pyOpenSSL WrappedSocket (.socket)": _pyopenssl,
    "gevent socket (._sock)": lambda sock: SimpleNamespace(_sock=sock),
    "pyOpenSSL over eventlet": lambda sock: SimpleNamespace(socket=SimpleNamespace(fd=sock)),
}


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_a_wrapped_socket_is_shut_down_underneath(wrap: Callable[[socket.socket], object]) -> None:
    watchdog = Watchdog()
    ours, theirs = socket.socketpair()
    call = call_with_deadline(0.2)
    watchdog.watch(call)
    watchdog.attach(call, SimpleNamespace(sock=wrap(ours)))
    thread, ended = blocked_read(ours)
    thread.join(2)
    assert call.deadline_at is not None
    assert ended and call.deadline_at <= ended[0] < call.deadline_at + 0.5
    ours.close()
    theirs.close()


def test_an_error_in_the_thread_is_logged_and_later_deadlines_still_end_their_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watchdog = Watchdog()
    secret_url = "http://user:hunter2@127.0.0.1/x?api_key=hunter2"
    failing = CallState.begin("GET", secret_url)
    failing.tighten_deadline(0.1)
    with caplog.at_level(logging.WARNING, logger="resilient_session"):
        watchdog.watch(failing)
        watchdog.attach(failing, SimpleNamespace(sock=_Broken(RuntimeError("boom"))))
        time.sleep(0.3)
        ours, theirs = socket.socketpair()
        call = call_with_deadline(0.2)
        watchdog.watch(call)
        watchdog.attach(call, SimpleNamespace(sock=ours))
        thread, ended = blocked_read(ours)
        thread.join(2)
    assert ended and call.expired  # the thread lived on
    records = [r for r in caplog.records if r.name == "resilient_session" and r.exc_info]
    assert len(records) == 1 and "GET" in records[0].getMessage()
    assert records[0].levelno == logging.WARNING
    assert "hunter2" not in caplog.text
    ours.close()
    theirs.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_thread_that_died_is_started_again_by_the_next_call() -> None:
    watchdog = Watchdog()
    dying = call_with_deadline(0.5)  # long enough to be attached before it expires, on a busy machine too
    watchdog.watch(dying)
    first = watchdog._thread
    assert first is not None
    # An exception no `except Exception` catches, as a killed greenlet raises: the thread ends.
    watchdog.attach(dying, SimpleNamespace(sock=_Broken(SystemExit())))
    first.join(2)
    assert not first.is_alive()
    ours, theirs = socket.socketpair()
    call = call_with_deadline(0.2)
    watchdog.watch(call)
    watchdog.attach(call, SimpleNamespace(sock=ours))
    thread, ended = blocked_read(ours)
    thread.join(2)
    assert ended and call.expired
    assert watchdog._thread is not first
    ours.close()
    theirs.close()


def test_the_thread_ends_when_idle_after_the_last_call_not_at_its_deadline() -> None:
    watchdog = Watchdog()
    assert watchdog.idle_exit == 60.0  # the documented minute; shortened here
    watchdog.idle_exit = 0.2
    call = call_with_deadline(600.0)
    watchdog.watch(call)
    thread = watchdog._thread
    assert thread is not None
    time.sleep(0.05)
    watchdog.unwatch(call)
    ended_at = time.monotonic()
    thread.join(2)
    assert not thread.is_alive()
    assert time.monotonic() - ended_at < 1.5  # not 600 s
    assert watchdog._heap == [] and watchdog._thread is None


def test_the_thread_is_never_started_while_its_lock_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    watchdog = Watchdog()
    held: list[bool] = []

    class Starting(threading.Thread):
        def start(self) -> None:
            # gevent runs a new thread at once, and its first act is to take the lock.
            free = watchdog._lock.acquire(blocking=False)
            held.append(not free)
            if free:
                watchdog._lock.release()
            super().start()

    monkeypatch.setattr(threading, "Thread", Starting)
    call = call_with_deadline(1.0)
    watchdog.watch(call)
    watchdog.unwatch(call)
    assert held == [False]


def test_a_lock_made_before_threading_was_patched_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    watchdog = Watchdog()
    warmup = call_with_deadline(5.0)
    watchdog.watch(warmup)
    watchdog.unwatch(warmup)
    old_lock, old_thread = watchdog._lock, watchdog._thread
    assert old_thread is not None
    made: list[object] = []

    def patched_lock() -> Any:  # what gevent's and eventlet's monkey-patching install
        made.append(_thread.allocate_lock())
        return made[-1]

    monkeypatch.setattr(threading, "Lock", patched_lock)
    ours, theirs = socket.socketpair()
    call = call_with_deadline(0.2)
    watchdog.watch(call)
    watchdog.attach(call, SimpleNamespace(sock=ours))
    thread, ended = blocked_read(ours)
    thread.join(2)
    assert ended and call.expired
    assert watchdog._lock is not old_lock and made  # a lock of the new kind
    old_thread.join(2)
    assert not old_thread.is_alive()  # the thread on the old lock retired
    ours.close()
    theirs.close()


def test_after_fork_the_child_forgets_the_parents_lock_thread_and_calls() -> None:
    watchdog = Watchdog()
    parents, peer = socket.socketpair()
    parent_call = call_with_deadline(0.1)
    watchdog.watch(parent_call)
    watchdog.attach(parent_call, SimpleNamespace(sock=parents))
    release = threading.Event()
    holding = threading.Event()

    def hold() -> None:  # a thread of the parent inside the lock when the process forks
        with watchdog._lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(2)
    watchdog._after_fork_in_child()
    ours, theirs = socket.socketpair()
    call = call_with_deadline(0.3)

    def watch() -> None:
        watchdog.watch(call)
        watchdog.attach(call, SimpleNamespace(sock=ours))

    watched = threading.Thread(target=watch)
    watched.start()
    watched.join(2)
    assert not watched.is_alive()  # the inherited held lock is not the child's
    thread, ended = blocked_read(ours)
    thread.join(2)
    assert ended and call.expired
    assert not parent_call.watched and not parent_call.expired
    peer.sendall(b"x")
    assert parents.recv(1) == b"x"  # the parent's socket (shared with the parent after a fork) untouched
    release.set()
    holder.join()
    for sock in (parents, peer, ours, theirs):
        sock.close()


def test_the_fork_hook_is_installed_on_first_use_not_at_import() -> None:
    script = (
        "import resilient_session, resilient_session._fork as f, resilient_session._watchdog as w;"
        "before = f._hooked;"
        "w.WATCHDOG.watch(resilient_session._call.CallState.begin('GET', 'x', deadline_at=1e12));"
        "print(before, f._hooked, w.WATCHDOG in f._objects)"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.stdout.split() == ["False", "True", "True"], completed.stderr
