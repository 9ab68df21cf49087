"""A scriptable HTTP server on 127.0.0.1, started by the tests themselves."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer. ``hang`` never answers; ``reset`` drops the connection (RST)."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0
    hang: bool = False
    reset: str | None = None  # "before" headers, or "mid" body
    content_length: int | None = None
    drip: float | None = None  # seconds between single bytes


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Upstream:
    """Routes map a path to a list of replies, served in order; the last one repeats."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.calls: dict[str, list[Call]] = defaultdict(list)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def script(self, path: str, *replies: Reply) -> str:
        with self.lock:
            self.routes[path] = list(replies)
            self.calls.pop(path, None)
        return self.url + path

    def count(self, path: str) -> int:
        with self.lock:
            return len(self.calls[path])

    def _next(self, path: str) -> Reply:
        with self.lock:
            replies = self.routes.get(path.split("?")[0]) or [Reply(status=404, body=b"no route")]
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                with upstream.lock:
                    upstream.calls[path].append(
                        Call(self.command, self.path, dict(self.headers), body, time.monotonic())
                    )
                reply = upstream._next(path)
                if reply.hang:
                    upstream.stop.wait(60)
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.reset == "before":
                    self._rst()
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                declared = reply.content_length if reply.content_length is not None else len(reply.body)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if reply.reset == "mid":
                    self.wfile.write(reply.body[: len(reply.body) // 2])
                    self.wfile.flush()
                    self._rst()
                    return
                if reply.drip is not None:
                    for byte in reply.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if upstream.stop.wait(reply.drip):
                            return
                    return
                self.wfile.write(reply.body)
                if reply.content_length is not None and reply.content_length > len(reply.body):
                    self.wfile.flush()
                    self.close_connection = True

            def _rst(self) -> None:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        return Handler

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
