"""resilient_session._compat.stdlib: the dict behind ``os.environ`` and the socket under its wrappers."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections import UserDict
from types import SimpleNamespace

import pytest

from resilient_session._compat.stdlib import environ_dict, shutdown_socket


def test_environ_dict_is_the_live_dict_behind_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    data = environ_dict()
    assert type(data) is dict
    before = dict(data)
    monkeypatch.setenv("RESILIENT_COMPAT_PROBE", "1")
    assert environ_dict() is data and data != before  # the same object, changed in place
    assert len(data) == len(os.environ)


def test_a_replaced_environ_is_followed_only_when_it_is_a_plain_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = {"A": "1"}
    monkeypatch.setattr(os, "environ", plain)
    assert environ_dict() is plain
    monkeypatch.setattr(os, "environ", UserDict(plain))  # a mapping, but not one compared in C
    assert environ_dict() is None


def _blocked_reader(sock: socket.socket) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        try:
            got.append(sock.recv(1))
        except OSError:
            got.append(b"error")

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, got


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: SimpleNamespace(fd=s),
        lambda s: SimpleNamespace(socket=SimpleNamespace(_sock=s)),
    ],
    ids=["plain", "eventlet-like", "nested"],
)
def test_shutdown_wakes_a_reader_blocked_on_the_socket_underneath(wrap: object) -> None:
    ours, theirs = socket.socketpair()
    thread, got = _blocked_reader(ours)
    shutdown_socket(wrap(ours))  # type: ignore[operator]
    thread.join(2)
    assert not thread.is_alive() and got == [b""]
    ours.close()
    theirs.close()


def test_shutdown_of_a_closed_or_missing_socket_does_nothing() -> None:
    ours, theirs = socket.socketpair()
    ours.close()
    shutdown_socket(ours)
    shutdown_socket(None)
    theirs.close()


def test_an_ssl_socket_is_shut_down_underneath_its_ssl_object() -> None:
    ours, theirs = socket.socketpair()
    context = ssl.create_default_context()
    wrapped = context.wrap_socket(ours, do_handshake_on_connect=False, server_hostname="127.0.0.1")
    theirs.settimeout(2)
    shutdown_socket(wrapped)
    assert theirs.recv(1) == b""  # the peer sees the end: the OS socket under the SSL layer was shut down
    assert wrapped.fileno() != -1  # and nothing else was done to it: closing stays its owner's job
    wrapped.close()
    theirs.close()
