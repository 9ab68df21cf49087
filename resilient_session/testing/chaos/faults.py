"""Connection-level faults: TCP resets, and responses that stop mid-way (werkzeug's server only)."""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator

from flask import Response, request

__all__ = ["send_then_reset"]


def _connection() -> socket.socket:
    """The TCP socket of the current request (werkzeug's development server exposes it)."""
    sock = request.environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        raise RuntimeError("connection resets need werkzeug's development server")
    return sock


def _reset(sock: socket.socket) -> None:
    """Abort *sock* with a TCP RST, as a crashing upstream or a proxy would.

    ``SO_LINGER`` 0 makes close() send a RST instead of a FIN. werkzeug still holds the socket object, and
    Python only really closes it once werkzeug's file wrappers let go, so the descriptor is replaced (dup2)
    by one end of a dead socketpair: the TCP socket closes now, and werkzeug's own cleanup then sees a
    plain EOF instead of errors.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    spare, dead = socket.socketpair()
    dead.close()
    try:
        os.dup2(spare.fileno(), sock.fileno())
    finally:
        spare.close()


class _Dropped(ConnectionResetError):
    """Ends a streamed response after a reset; werkzeug treats it as a dropped connection, silently."""


def send_then_reset(
    stopping: threading.Event, head: bytes = b"", wait: float | None = 0.0, **headers: str
) -> Response:
    """A response that sends *head* (headers included when non-empty), waits, then resets the connection.

    *wait* is in seconds, ``None`` meaning until *stopping* is set (the server shuts down), which also
    ends any wait early. The body runs in werkzeug's thread after the view returned, so it takes the
    socket now, not from Flask's request context.
    """
    sock = _connection()

    def stream() -> Iterator[bytes]:
        if head:
            yield head
        stopping.wait(wait)
        _reset(sock)
        raise _Dropped("chaos: connection reset")

    return Response(stream(), mimetype="application/json", headers=headers)
