"""The chaos Flask app: one route per failure an external API can produce (see the package docstring)."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from .faults import send_then_reset
from .loopback import is_loopback

__all__ = ["CONTROL_PREFIX", "State", "create_app"]

CONTROL_PREFIX = "/__chaos__"

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


class State:
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


def _state() -> State:
    state: State = g.chaos_state
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
    # Named after the package, as before the split: its logger keeps its name.
    app = Flask(__name__.rpartition(".")[0])
    state = State()
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
            return send_then_reset(
                state.stopping,
            )
        if draw < reset_rate + rate:
            return _error(status, _arg_float("retry_after"))
        return _ok()

    @app.get("/reset")
    def reset() -> Response:
        if not _fault_applies():
            return _ok()
        return send_then_reset(
            state.stopping,
        )

    @app.get("/reset-body")
    def reset_body() -> Response:
        if not _fault_applies():
            return _ok()
        body = _json_body({"items": ["x" * 64] * 32})
        # The pause lets the client read the headers first, so the reset lands in the body, not before it.
        pause = (_arg_float("pause_ms", 50.0) or 0.0) / 1000
        return send_then_reset(
            state.stopping, body[: len(body) // 2], pause, **{"Content-Length": str(len(body))}
        )

    @app.get("/hang")
    def hang() -> Response:
        if not _fault_applies():
            return _ok()
        return send_then_reset(state.stopping, wait=_arg_float("seconds"))

    @app.get("/stall")
    def stall() -> Response:
        if not _fault_applies():
            return _ok()
        body = _json_body({"items": ["x" * 64] * 32})
        return send_then_reset(
            state.stopping,
            body[: len(body) // 4],
            _arg_float("seconds"),
            **{"Content-Length": str(len(body))},
        )

    @app.get("/drip")
    def drip() -> Response:
        if not _fault_applies():
            return _ok()
        size = max(0, _arg_int("bytes", 10))
        interval = (_arg_float("interval_ms", 100.0) or 0.0) / 1000
        stopping = state.stopping

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
