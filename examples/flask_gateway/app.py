"""An internal gateway endpoint that calls two external APIs, and keeps answering when one is down.

``GET /products/<id>`` needs the catalog API (if it fails, the caller gets a problem+json 502/503/504)
and would like the reviews API (if it fails, the answer says ``"degraded": ["reviews"]``).
``GET /integrations/health`` reports both circuits. Both APIs are simulated by the chaos server.

Run the scripted demo (starts the chaos server on loopback, serves the gateway, drives it)::

    python examples/flask_gateway/app.py

or serve it and explore with curl (``POST /demo/reviews/down`` breaks an upstream)::

    python examples/flask_gateway/app.py --serve
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
from flask import Flask, abort, current_app, jsonify
from werkzeug.serving import make_server

from resilient_session import APIError
from resilient_session.contrib.flask import Integrations
from resilient_session.testing.chaos import ChaosServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

HERE = Path(__file__).parent
log = logging.getLogger("gateway")

# The chaos-server route each mode of an upstream uses. Against the real APIs the gateway would call
# f"/products/{id}" and f"/products/{id}/reviews"; here the route decides how the upstream behaves.
MODES = {"up": "/echo", "down": "/fail/503", "slow": "/hang?seconds=10"}

integrations = Integrations(error_handlers=True)


def create_app(source: str | Path | Mapping[str, Any] = HERE / "integrations.toml") -> Flask:
    """The gateway app; *source* is the integrations file (or its parsed mapping)."""
    app = Flask(__name__)
    app.config["RESILIENT_INTEGRATIONS"] = source
    app.config["UPSTREAM_MODES"] = {"catalog": "up", "reviews": "up"}
    integrations.init_app(app)
    app.register_blueprint(integrations.health_blueprint(), url_prefix="/integrations")

    @app.get("/products/<int:product_id>")
    def product(product_id: int) -> Any:
        # Required: a typed error escaping here becomes a problem+json answer (502, 503 or 504).
        catalog = _call("catalog", product_id)
        degraded = []
        try:
            reviews = _call("reviews", product_id)
        except APIError as error:
            # Optional: answer without it, and say so.
            log.warning("reviews unavailable for product %s: %s", product_id, type(error).__name__)
            reviews, degraded = None, ["reviews"]
        return jsonify(
            id=product_id,
            catalog=catalog,
            reviews=reviews,
            degraded=degraded,
        )

    return app


def _call(name: str, product_id: int) -> dict[str, Any]:
    route = MODES[current_app.config["UPSTREAM_MODES"][name]]
    echoed = integrations[name].get(route, params={"product": product_id}).json()
    headers = {k.lower(): v for k, v in echoed.get("headers", {}).items()}
    # What the upstream received: the gateway's incoming request id travels with every call.
    return {"upstream_request_id": headers.get("x-request-id")}


def _add_demo_controls(app: Flask) -> None:
    @app.post("/demo/<name>/<mode>")
    def set_mode(name: str, mode: str) -> Any:
        modes = app.config["UPSTREAM_MODES"]
        if name not in modes or mode not in MODES:
            abort(404)
        modes[name] = mode
        return jsonify(modes)


def _demo_config(chaos: ChaosServer) -> dict[str, Any]:
    # The checked-in file names fixed ports; the demo points each API at a chaos-server origin instead.
    with (HERE / "integrations.toml").open("rb") as file:
        config = tomllib.load(file)
    config["integrations"]["catalog"]["base_url"] = chaos.url
    config["integrations"]["reviews"]["base_url"] = chaos.second_url
    return config


def run_demo(out: Callable[[str], None] = print) -> bool:
    """Drive the gateway through an outage of each upstream; True when every step behaved as expected."""
    with ChaosServer() as chaos:
        app = create_app(_demo_config(chaos))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_port}"
        modes = app.config["UPSTREAM_MODES"]
        ok = True

        def step(title: str, path: str, expect: int, request_id: str | None = None) -> dict[str, Any]:
            nonlocal ok
            headers = {"X-Request-ID": request_id} if request_id else {}
            started = time.perf_counter()
            response = requests.get(base + path, headers=headers, timeout=10)
            elapsed = (time.perf_counter() - started) * 1000
            body: dict[str, Any] = response.json()
            if path.startswith("/integrations"):
                summary = ", ".join(f"{name}={item['status']}" for name, item in body["integrations"].items())
            elif response.status_code == 200:
                summary = f"degraded={body['degraded']}"
            else:
                summary = f"{response.headers['Content-Type']}: {body['title']}"
                if "Retry-After" in response.headers:
                    summary += f" (Retry-After: {response.headers['Retry-After']})"
            mark = "ok " if response.status_code == expect else "!! "
            ok = ok and response.status_code == expect
            out(f"{mark}{title:<44} {response.status_code}  {elapsed:7.1f} ms  {summary}")
            return body

        try:
            body = step("both upstreams up", "/products/1", 200, request_id="demo-42")
            out(f"   the catalog API saw X-Request-ID: {body['catalog']['upstream_request_id']}")
            modes["reviews"] = "down"
            for attempt in range(1, 4):
                step(f"reviews down (call {attempt}): degraded answer", "/products/1", 200)
            before = chaos.calls("/fail/503")
            step("reviews circuit open: no call made", "/products/1", 200)
            out(f"   calls reaching the reviews API meanwhile: {chaos.calls('/fail/503') - before}")
            step("health while reviews is open", "/integrations/health", 503)
            modes["catalog"] = "slow"
            step("catalog hangs: the gateway gives up", "/products/2", 504)
            modes["catalog"] = modes["reviews"] = "up"
            out("   both upstreams recover; waiting out the reviews circuit's open wait (2 s)")
            time.sleep(2.05)
            step("first call after the wait probes and closes", "/products/3", 200)
            step("health after recovery", "/integrations/health", 200)
        finally:
            server.shutdown()
            server.server_close()
            integrations.close(app)
        return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="serve the gateway until interrupted")
    parser.add_argument("--port", type=int, default=5000, help="gateway port with --serve (127.0.0.1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.serve else logging.WARNING)
    if not args.serve:
        return 0 if run_demo() else 1
    with ChaosServer() as chaos:
        app = create_app(_demo_config(chaos))
        _add_demo_controls(app)
        print(f"gateway on http://127.0.0.1:{args.port} (upstreams simulated at {chaos.url})")
        print("  GET  /products/1              GET /integrations/health")
        print("  POST /demo/<catalog|reviews>/<up|down|slow>")
        make_server("127.0.0.1", args.port, app, threaded=True).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
