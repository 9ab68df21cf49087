"""A loopback server that echoes the request it received back in its error answers, as careless APIs
and token endpoints do: ``/<status>/<shape>/<part>`` answers *status* with *part* of the request in a
body of *shape*.

Parts: ``target`` (the request target as sent, percent-encoded), ``target-decoded`` (form-decoded),
``target-lower`` (percent escapes in lower-case hex), ``authorization`` (the header as sent),
``basic-decoded`` (``user:password`` from ``Basic``), ``api-key`` (the ``X-API-Key`` header), ``body``
(as sent, form-encoded), ``body-decoded``, ``all`` (every part, one after the other).

Shapes: ``json`` (``{"error": {"code", "message"}}``), ``oauth`` (``{"error", "error_description"}``),
``text``, ``html`` (in the page title) and ``reason`` (in the status line's reason phrase).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote_plus

PARTS = (
    "target",
    "target-decoded",
    "target-lower",
    "authorization",
    "basic-decoded",
    "api-key",
    "body",
    "body-decoded",
)
SHAPES = ("json", "oauth", "text", "html", "reason")


def _basic_decoded(header: str) -> str:
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(credential).decode("latin-1")
    except (binascii.Error, ValueError):
        return ""


class EchoServer:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        echo = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                echo.requests.append((self.path, dict(self.headers.items()), body))
                _, status, shape, part = [*self.path.split("?")[0].split("/"), "", "", ""][:4]
                text = body.decode("latin-1")
                parts = {
                    "target": self.path,
                    "target-decoded": unquote_plus(self.path),
                    "target-lower": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), self.path),
                    "authorization": self.headers.get("Authorization", ""),
                    "basic-decoded": _basic_decoded(self.headers.get("Authorization", "")),
                    "api-key": self.headers.get("X-API-Key", ""),
                    "body": text,
                    "body-decoded": unquote_plus(text),
                }
                said = " | ".join(parts.values()) if part == "all" else parts.get(part, "")
                message = f"rejected {said}"
                reason = None
                if shape == "oauth":
                    payload = json.dumps({"error": "invalid_client", "error_description": message})
                    content, kind = payload.encode(), "application/json"
                elif shape == "text":
                    content, kind = message.encode("utf-8"), "text/plain; charset=utf-8"
                elif shape == "html":
                    page = f"<html><head><title>{html.escape(message)}</title></head><body></body></html>"
                    content, kind = page.encode("utf-8"), "text/html; charset=utf-8"
                elif shape == "reason":
                    content, kind = b"", "text/plain"
                    reason = message.replace("\r", " ").replace("\n", " ")
                else:
                    payload = json.dumps({"error": {"code": "echo", "message": message}})
                    content, kind = payload.encode(), "application/json"
                code = int(status) if status.isdigit() else 400
                if reason is not None:
                    # http.server writes the reason phrase as latin-1, unchecked.
                    self.send_response_only(code, reason.encode("latin-1", "replace").decode("latin-1"))
                    self.send_header("Date", self.date_time_string())
                else:
                    self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = _serve

        return Handler
