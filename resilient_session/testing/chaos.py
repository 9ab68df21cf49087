"""A misbehaving HTTP server for loopback tests: every failure an external API can produce, on demand.

Start it in a test or a script::

    with ChaosServer() as chaos:
        session.get(chaos.url + "/fail/503?times=2")   # 503, 503, then 200
        assert chaos.calls("/fail/503") == 3

or from a shell: ``python -m resilient_session.testing.chaos --port 0`` prints its URL and serves until
interrupted.

It is a Flask app on werkzeug's threaded server and listens on two loopback ports, so redirects can cross
origins (:attr:`ChaosServer.url` and :attr:`ChaosServer.second_url`). It refuses to bind anything but a
loopback address. Connection resets are real TCP resets (POSIX only).

Routes (``GET`` unless noted; ``times=K`` on any fault route makes only the first K calls to that path
misbehave, later calls get ``200 {"ok": true}``):

======================================  =====================================================================
``/ok``                                 200 JSON.
``/echo`` (any method)                  200 JSON: method, path, query, headers and body received.
``/latency?ms=N``                       Answers after N ms; ``min_ms=A&max_ms=B[&seed=S]`` picks a random
                                        latency (reproducible with a seed).
``/fail/<code>[?retry_after=S]``        Status ``code`` with a JSON error body (and ``Retry-After: S``).
``/flaky?rate=R[&status=503]``          Fails a fraction R of calls with ``status``; ``reset_rate=P`` resets
``[&reset_rate=P][&seed=S]``            a fraction P of connections. Seeded: the same sequence every run.
``/reset``                              Resets the connection (RST) before sending anything.
``/reset-body[?pause_ms=50]``           Sends headers and half the body, then resets the connection.
``/hang[?seconds=N]``                   Accepts the request and never answers (until N s or shutdown).
``/stall[?seconds=N]``                  Sends headers and part of the body, then goes silent.
``/drip?bytes=N&interval_ms=M``         Sends the body one byte every M ms.
``/truncated[?length=N&sent=M]``        Declares ``Content-Length: N``, sends M bytes, closes cleanly.
``/malformed-json``                     200 ``application/json`` whose body is cut mid-document.
``/xml``                                200 ``application/xml`` document (attributes, namespaces, lists).
``/soap-fault``                         500 SOAP 1.1 Fault.
``/problem?status=N``                   RFC 9457 ``application/problem+json`` error.
``/redirect?to=PATH[&status=302]``      Redirects to PATH; ``cross=1`` sends it to the other origin;
                                        ``to`` may also be an absolute loopback URL.
``/__chaos__/calls``                    JSON ``{path: calls}`` (control routes are not counted).
``/__chaos__/reset`` (POST)             Zeroes the counters and reseeds the random sequences.
======================================  =====================================================================
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import socket
import struct
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, jsonify, redirect, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Response as BaseResponse

__all__ = ["ChaosServer", "create_app", "is_loopback", "main"]

CONTROL_PREFIX = "/__chaos__"

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})

_XML_BODY = b"""<?xml version="1.0" encoding="UTF-8"?>
<catalog xmlns="urn:example:catalog" xmlns:p="urn:example:price" version="2">
  <item id="1"><name>Widget</name><p:price currency="EUR">9.50</p:price></item>
  <item id="2"><name>Gadget</name><p:price currency="EUR">12.00</p:price></item>
  <total>2</total>
</catalog>
"""

_SOAP_FAULT_BODY = b"""<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <soap:Fault>
      <faultcode>soap:Server</faultcode>
      <faultstring>Upstream ledger unavailable</faultstring>
      <detail><code>LEDGER_DOWN</code></detail>
    </soap:Fault>
  </soap:Body>
</soap:Envelope>
"""

_MALFORMED_JSON_BODY = b'{"id": 42, "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-'


def is_loopback(host: str) -> bool:
    """True when *host* names this machine's loopback interface."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _State:
    """Counters and random sequences shared by every request thread of one app."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.rngs: dict[tuple[str, str], random.Random] = {}
        # Set at shutdown: wakes every hanging, stalled or slow handler so no thread outlives the server.
        self.stopping = threading.Event()
        self.origins: list[str] = []

    def count(self, path: str) -> int:
        with self.lock:
            self.calls[path] += 1
            return self.calls[path]

    def random(self, path: str, seed: str | None) -> float:
        """Next number of the sequence for (*path*, *seed*); unseeded sequences are seeded from the OS."""
        with self.lock:
            key = (path, seed or "")
            rng = self.rngs.get(key)
            if rng is None:
                rng = self.rngs[key] = random.Random(seed) if seed is not None else random.Random()
            return rng.random()

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.rngs.clear()


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


def _send_then_reset(head: bytes = b"", wait: float | None = 0.0, **headers: str) -> Response:
    """A response that sends *head* (headers included when non-empty), waits, then resets the connection.

    *wait* is in seconds, ``None`` meaning until shutdown. The body runs in werkzeug's thread after the
    view returned, so it gets the socket and the shutdown event now, not from Flask's request context.
    """
    sock = _connection()
    stopping = _state().stopping

    def stream() -> Iterator[bytes]:
        if head:
            yield head
        stopping.wait(wait)
        _reset(sock)
        raise _Dropped("chaos: connection reset")

    return Response(stream(), mimetype="application/json", headers=headers)


def _state() -> _State:
    state: _State = g.chaos_state
    return state


def _arg_float(name: str, default: float | None = None) -> float | None:
    value = request.args.get(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        abort(400, f"query parameter {name!r} must be a number")


def _arg_int(name: str, default: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        abort(400, f"query parameter {name!r} must be an integer")


def _ok(**extra: Any) -> Response:
    return jsonify(ok=True, path=request.path, call=g.call, **extra)


def _fault_applies() -> bool:
    """True unless ``times=K`` was given and this path has already misbehaved K times."""
    times = request.args.get("times")
    return times is None or g.call <= _arg_int("times", 0)


def _wait(seconds: float | None) -> None:
    """Wait *seconds* (``None``: until shutdown); shutdown always ends the wait early."""
    _state().stopping.wait(seconds)


def _json_body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def create_app() -> Flask:
    """Build the chaos Flask app (serve it with werkzeug's development server; see :class:`ChaosServer`)."""
    app = Flask(__name__)
    state = _State()
    app.extensions["chaos"] = state

    @app.before_request
    def _count() -> None:
        g.chaos_state = state
        g.call = 0 if request.path.startswith(CONTROL_PREFIX) else state.count(request.path)

    @app.get("/")
    def index() -> Response:
        rules = sorted(str(rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static")
        return jsonify(routes=rules, origins=state.origins)

    @app.get("/ok")
    def ok() -> Response:
        return _ok()

    @app.route("/echo", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    def echo() -> Response:
        return jsonify(
            method=request.method,
            path=request.path,
            query=request.args.to_dict(flat=False),
            headers=dict(request.headers.items()),
            body=request.get_data(as_text=True),
            origin=request.host_url.rstrip("/"),
        )

    @app.get("/latency")
    def latency() -> Response:
        if not _fault_applies():
            return _ok()
        fixed = _arg_float("ms")
        if fixed is not None:
            delay_ms = fixed
        else:
            low = _arg_float("min_ms", 0.0) or 0.0
            high = _arg_float("max_ms", low) or low
            delay_ms = low + (high - low) * state.random(request.path, request.args.get("seed"))
        _wait(delay_ms / 1000)
        return _ok(latency_ms=round(delay_ms, 3))

    @app.route("/fail/<int:code>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
    def fail(code: int) -> Response:
        if not 400 <= code <= 599:
            abort(400, "status must be 400-599")
        if not _fault_applies():
            return _ok()
        return _error(code, _arg_float("retry_after"))

    @app.get("/flaky")
    def flaky() -> Response:
        rate = _arg_float("rate", 0.0) or 0.0
        reset_rate = _arg_float("reset_rate", 0.0) or 0.0
        status = _arg_int("status", 503)
        if not 400 <= status <= 599:
            abort(400, "status must be 400-599")
        draw = state.random(request.path, request.args.get("seed"))
        if draw < reset_rate:
            return _send_then_reset()
        if draw < reset_rate + rate:
            return _error(status, _arg_float("retry_after"))
        return _ok()

    @app.get("/reset")
    def reset() -> Response:
        if not _fault_applies():
            return _ok()
        return _send_then_reset()

    @app.get("/reset-body")
    def reset_body() -> Response:
        if not _fault_applies():
            return _ok()
        body = _json_body({"items": ["x" * 64] * 32})
        # The pause lets the client read the headers first, so the reset lands in the body, not before it.
        pause = (_arg_float("pause_ms", 50.0) or 0.0) / 1000
        return _send_then_reset(body[: len(body) // 2], pause, **{"Content-Length": str(len(body))})

    @app.get("/hang")
    def hang() -> Response:
        if not _fault_applies():
            return _ok()
        return _send_then_reset(wait=_arg_float("seconds"))

    @app.get("/stall")
    def stall() -> Response:
        if not _fault_applies():
            return _ok()
        body = _json_body({"items": ["x" * 64] * 32})
        return _send_then_reset(
            body[: len(body) // 4], _arg_float("seconds"), **{"Content-Length": str(len(body))}
        )

    @app.get("/drip")
    def drip() -> Response:
        if not _fault_applies():
            return _ok()
        size = max(0, _arg_int("bytes", 10))
        interval = (_arg_float("interval_ms", 100.0) or 0.0) / 1000
        stopping = _state().stopping

        def stream() -> Iterator[bytes]:
            for index in range(size):
                if index and stopping.wait(interval):
                    return
                yield b"."

        return Response(stream(), mimetype="text/plain", headers={"Content-Length": str(size)})

    @app.get("/truncated")
    def truncated() -> Response:
        if not _fault_applies():
            return _ok()
        length = max(1, _arg_int("length", 1024))
        sent = min(max(0, _arg_int("sent", length // 2)), length - 1)
        body = (b'{"data": "' + b"x" * length)[:sent]

        def stream() -> Iterator[bytes]:
            yield body

        # werkzeug closes the connection after every response, so the client sees a clean EOF short
        # of the promised length.
        return Response(stream(), mimetype="application/json", headers={"Content-Length": str(length)})

    @app.get("/malformed-json")
    def malformed_json() -> Response:
        if not _fault_applies():
            return _ok()
        return Response(_MALFORMED_JSON_BODY, status=_arg_int("status", 200), mimetype="application/json")

    @app.get("/xml")
    def xml() -> Response:
        return Response(_XML_BODY, mimetype="application/xml")

    @app.route("/soap-fault", methods=["GET", "POST"])
    def soap_fault() -> Response:
        if not _fault_applies():
            return _ok()
        return Response(_SOAP_FAULT_BODY, status=500, content_type="text/xml; charset=utf-8")

    @app.get("/problem")
    def problem() -> Response:
        if not _fault_applies():
            return _ok()
        status = _arg_int("status", 400)
        payload = {
            "type": "https://example.com/problems/out-of-credit",
            "title": "You do not have enough credit.",
            "status": status,
            "detail": "Your current balance is 30, but that costs 50.",
            "instance": "/account/12345/msgs/abc",
        }
        return Response(_json_body(payload), status=status, mimetype="application/problem+json")

    @app.route("/redirect", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
    def redirect_to() -> BaseResponse:
        target = request.args.get("to", "/echo")
        status = _arg_int("status", 302)
        if status not in (301, 302, 303, 307, 308):
            abort(400, "status must be 301, 302, 303, 307 or 308")
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            if parts.scheme not in ("http", "https") or not is_loopback(parts.hostname or ""):
                abort(400, "redirect targets must be loopback URLs")
        elif request.args.get("cross") in ("1", "true", "yes"):
            here = request.host_url.rstrip("/")
            others = [origin for origin in state.origins if origin != here]
            if not others:
                abort(400, "no second origin to redirect to")
            target = others[0] + target
        return redirect(target, code=status)

    @app.get(CONTROL_PREFIX + "/calls")
    def control_calls() -> Response:
        with state.lock:
            return jsonify(dict(state.calls))

    @app.post(CONTROL_PREFIX + "/reset")
    def control_reset() -> Response:
        state.reset()
        return jsonify(ok=True)

    return app


def _error(status: int, retry_after: float | None) -> Response:
    payload = {"error": {"status": status, "message": f"chaos: status {status}", "call": g.call}}
    response = Response(_json_body(payload), status=status, mimetype="application/json")
    if retry_after is not None:
        response.headers["Retry-After"] = f"{retry_after:g}"
    return response


class _QuietHandler(WSGIRequestHandler):
    # Declared here so werkzeug does not switch the shared WSGIRequestHandler class to HTTP/1.1 itself.
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Access logs would drown test output; errors are still logged."""


class ChaosServer:
    """The chaos app served on two loopback ports in background threads.

    :param host: A loopback address to bind (default ``127.0.0.1``); anything else is refused.
    :param port: Port of the first origin; 0 (the default) picks a free one. The second origin always
        takes a free port.

    Use it as a context manager or call :meth:`start` and :meth:`stop`. While running it also stands for
    its URL: ``str(chaos)`` is :attr:`url` and ``chaos + "/ok"`` is ``chaos.url + "/ok"``. Server threads
    are daemons, and :meth:`stop` releases every hanging or stalled request (with a reset), so nothing
    keeps the process alive. Thread-safe.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            raise ValueError(f"the chaos server only listens on loopback addresses, not {host!r}")
        self.host = host
        self.port = port
        self.app = create_app()
        self._state: _State = self.app.extensions["chaos"]
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """Base URL of the first origin, e.g. ``http://127.0.0.1:53411`` (no trailing slash)."""
        return self._origin(0)

    @property
    def second_url(self) -> str:
        """Base URL of the second origin (same routes and counters, another port)."""
        return self._origin(1)

    def _origin(self, index: int) -> str:
        if not self._servers:
            raise RuntimeError("the chaos server is not running; call start() or use it as a context manager")
        return self._state.origins[index]

    def start(self) -> ChaosServer:
        """Bind both ports and start serving; returns the server."""
        if self._servers:
            return self
        self._state.stopping.clear()
        host = f"[{self.host}]" if ":" in self.host else self.host
        for port in (self.port, 0):
            server = make_server(self.host, port, self.app, threaded=True, request_handler=_QuietHandler)
            self._servers.append(server)
            self._state.origins.append(f"http://{host}:{server.server_address[1]}")
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"chaos-server-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, release hanging requests and close both ports."""
        self._state.stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        self._state.origins.clear()

    def calls(self, path: str) -> int:
        """How many requests *path* (e.g. ``"/fail/503"``) received since the start or the last reset."""
        with self._state.lock:
            return self._state.calls[path]

    def all_calls(self) -> dict[str, int]:
        """Calls per path, as served by ``/__chaos__/calls``."""
        with self._state.lock:
            return dict(self._state.calls)

    def reset(self) -> None:
        """Zero the call counters and restart the seeded random sequences."""
        self._state.reset()

    def __enter__(self) -> ChaosServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __str__(self) -> str:
        """The URL while running, so ``f"{chaos}/ok"`` and ``requests.get(chaos)`` work as with a str."""
        return self.url if self._servers else repr(self)

    def __add__(self, path: str) -> str:
        """``chaos + "/fail/503"``: the URL of *path* on the first origin."""
        if not isinstance(path, str):
            return NotImplemented
        return self.url + path

    def __repr__(self) -> str:
        where = ", ".join(self._state.origins) if self._servers else "stopped"
        return f"<ChaosServer {where}>"


def main(argv: list[str] | None = None) -> int:
    """``python -m resilient_session.testing.chaos``: serve until interrupted, printing the URL first."""
    parser = argparse.ArgumentParser(
        prog="python -m resilient_session.testing.chaos",
        description="A misbehaving HTTP server for loopback tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port of the first origin (0: any free port)")
    args = parser.parse_args(argv)
    try:
        server = ChaosServer(args.host, args.port).start()
    except ValueError as error:
        parser.error(str(error))
    print(server.url, flush=True)
    print(f"second origin: {server.second_url}; Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
