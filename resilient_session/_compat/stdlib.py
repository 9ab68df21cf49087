"""What the package needs from the standard library beyond its documented API."""

from __future__ import annotations

import _socket
import contextlib
import http.client
import os
import socket
import time
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    #: The object ``ArgumentParser.add_subparsers()`` returns, for annotations: argparse documents what it
    #: does ("a special action object" with ``add_parser``) but gives its class no public name.
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["cookie_jar_empty", "environ_dict", "sets_cookies", "shutdown_socket", "stamp_cookie_jar"]


def environ_dict() -> dict[Any, Any] | None:
    """The dict behind ``os.environ`` (``os._Environ._data``: encoded keys and values), or ``os.environ``
    itself when it was replaced by a plain dict; None when it is anything else.

    Stands in for comparing ``dict(os.environ)`` with an earlier copy: the raw dict compares in C without
    decoding every variable, which is what lets a per-call check that the environment did not change cost
    well under a microsecond.
    """
    env: object = os.environ  # tests and applications may have replaced it
    if type(env) is os._Environ:
        data: object = env._data  # type: ignore[attr-defined]
        return data if type(data) is dict else None
    return env if type(env) is dict else None


#: Attributes under which socket wrappers keep the socket they wrap: eventlet's GreenSocket (``fd``),
#: urllib3's pyOpenSSL ``WrappedSocket`` (``socket``), gevent's socket and others (``_sock``).
_WRAPPED = ("fd", "socket", "_sock")


def shutdown_socket(sock: Any) -> None:
    """``shutdown(SHUT_RDWR)`` on the operating-system socket under *sock* and its wrappers.

    Stands in for ``sock.shutdown(socket.SHUT_RDWR)``: called from another thread, that must reach the OS
    socket, where a thread blocked in ``recv`` wakes up. ``ssl.SSLSocket.shutdown`` first drops its SSL
    object (racing the reader), and green or pyOpenSSL wrappers may not pass the call down, so the wrappers
    are unwrapped (their private attributes above) and ``_socket.socket.shutdown`` is called on the socket
    underneath. A closed socket has nothing to end; a wrapper of unknown kind gets its own ``shutdown``.
    """
    inner = sock
    for _ in range(8):
        if inner is None:
            break
        if isinstance(inner, _socket.socket):
            with contextlib.suppress(OSError, ValueError):
                _socket.socket.shutdown(inner, socket.SHUT_RDWR)
            return
        inner = next((getattr(inner, name) for name in _WRAPPED if hasattr(inner, name)), None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def cookie_jar_empty(jar: CookieJar) -> bool:
    """True when *jar* holds no cookie (its ``_cookies`` dict is empty).

    Stands in for ``len(jar) == 0``, which walks the jar through a Python generator: checked on every
    call, this must cost no Python call.
    """
    return not jar._cookies  # type: ignore[attr-defined]


def stamp_cookie_jar(jar: CookieJar) -> None:
    """Record the time on *jar* and its policy as ``CookieJar.add_cookie_header`` does (``_now``) when it
    finds no cookie to add, so a jar that skipped that call is in the state one that made it would be."""
    jar._policy._now = jar._now = int(time.time())  # type: ignore[attr-defined]


_COOKIE_HEADERS = ("set-cookie", "set-cookie2")


def sets_cookies(message: Any) -> bool | None:
    """Whether an ``http.client.HTTPMessage`` has a ``Set-Cookie`` or ``Set-Cookie2`` header (what
    ``CookieJar.extract_cookies`` reads with ``get_all``); None when *message* is anything else.

    Stands in for two ``get_all`` calls, each a Python scan of the headers: one scan of ``_headers``.
    """
    if type(message) is not http.client.HTTPMessage:
        return None
    for name, _ in message._headers:  # type: ignore[attr-defined]  # noqa: SIM110 - no generator per header
        if name.lower() in _COOKIE_HEADERS:
            return True
    return False
