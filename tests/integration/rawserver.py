"""A loopback HTTP/1.1 server scripted byte by byte: it drips status lines and headers, cuts bodies off,
lies about lengths, and records every request (method, path, headers, body) it received."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Behaviour = Callable[["Conn", "Received"], bool]  # returns True to keep the connection open


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Conn:
    sock: socket.socket
    stop: threading.Event

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait(self, seconds: float) -> bool:
        """Sleep; True when the server is shutting down."""
        return self.stop.wait(seconds)

    def reset(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def response(
    status: int = 200,
    body: bytes = b'{"ok": true}',
    headers: dict[str, str] | None = None,
    content_length: int | None = None,
) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    merged = {"Content-Type": "application/json", **(headers or {})}
    merged.setdefault("Content-Length", str(len(body) if content_length is None else content_length))
    lines += [f"{k}: {v}" for k, v in merged.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def answer(status: int = 200, body: bytes = b'{"ok": true}', **kwargs: object) -> Behaviour:
    def run(conn: Conn, _: Received) -> bool:
        conn.send(response(status, body, **kwargs))  # type: ignore[arg-type]
        return True

    return run


def cut_mid_body(body: bytes = b'{"items": [1, 2, 3, 4, 5, 6, 7, 8]}', *, rst: bool = True) -> Behaviour:
    """Promise the whole body, send half of it, then reset (or close) the connection."""

    def run(conn: Conn, _: Received) -> bool:
        conn.send(response(200, body)[: -len(body) // 2])
        if rst:
            conn.reset()
        else:
            conn.sock.close()
        return False

    return run


def drip_headers(every: float, *, bytewise: bool = False) -> Behaviour:
    """A status line, then header lines (or single bytes of one endless header) forever."""

    def run(conn: Conn, _: Received) -> bool:
        try:
            conn.send(b"HTTP/1.1 200 OK\r\n")
            n = 0
            while not conn.wait(every):
                n += 1
                conn.send(b"X" if bytewise else f"X-Drip-{n}: {n}\r\n".encode())
        except OSError:
            pass
        return False

    return run


def drip_body(every: float, body: bytes = b'{"slow": "' + b"x" * 200 + b'"}') -> Behaviour:
    def run(conn: Conn, _: Received) -> bool:
        try:
            conn.send(response(200, body)[: -len(body)])
            for byte in body:
                if conn.wait(every):
                    break
                conn.send(bytes([byte]))
        except OSError:
            pass
        return False

    return run


def hang() -> Behaviour:
    def run(conn: Conn, _: Received) -> bool:
        conn.wait(60)
        return False

    return run


def reset_before_answer() -> Behaviour:
    def run(conn: Conn, _: Received) -> bool:
        conn.reset()
        return False

    return run


@dataclass
class RawServer:
    """Serves the scripted behaviours in order, one per request; the last one repeats."""

    behaviours: list[Behaviour] = field(default_factory=list)
    tls: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def script(self, *behaviours: Behaviour) -> None:
        with self.lock:
            self.behaviours = list(behaviours)
            self.received.clear()

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.listener.close()

    def _accept(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                sock.close()
                return
        reader = sock.makefile("rb")
        conn = Conn(sock, self.stop)
        try:
            while not self.stop.is_set():
                received = _read_request(reader)
                if received is None:
                    return
                with self.lock:
                    self.received.append(received)
                    behaviour = self.behaviours.pop(0) if len(self.behaviours) > 1 else self.behaviours[0]
                if not behaviour(conn, received):
                    return
        except (OSError, ValueError):
            return
        finally:
            with contextlib.suppress(OSError):
                sock.close()


def _read_request(reader: object) -> Received | None:
    readline = reader.readline  # type: ignore[attr-defined]
    line = readline(65537)
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = readline(65537)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    read = reader.read  # type: ignore[attr-defined]
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                readline(1024)
                break
            body += read(size)
            readline(1024)
    elif headers.get("content-length"):
        body = read(int(headers["content-length"]))
    return Received(method, path, headers, body, time.monotonic())
