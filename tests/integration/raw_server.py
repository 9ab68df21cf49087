"""A loopback server speaking raw bytes: one connection per request, answered from a script."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: What the server answers when its script is empty.
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"


@contextmanager
def raw_server() -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """``(base URL, script, received)``: each connection's request head (up to the blank line) is appended
    to *received*, and the next bytes of *script* (``NO_CONTENT`` when it is empty) are sent back before
    the server closes the connection."""
    script: list[bytes] = []
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                received.append(data)
                conn.sendall(script.pop(0) if script else NO_CONTENT)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", script, received
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        listener.close()
        thread.join(timeout=5)
