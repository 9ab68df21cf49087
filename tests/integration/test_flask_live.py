"""The Flask integration against the chaos server: error mapping, health, request ids, a threaded server."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

import resilient_session.contrib.flask.extension as rs_flask
from resilient_session import ResilientSession
from resilient_session.contrib.flask import EXTENSION_KEY, Integrations
from resilient_session.testing.chaos import ChaosServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def build_app(chaos_url: str, closed_port: int) -> tuple[Flask, Integrations]:
    fast = {"retry": False, "timeout": {"connect": 0.5, "read": 0.3}, "raise_for_status": True}
    app = Flask(__name__)
    app.config["RESILIENT_INTEGRATIONS"] = {
        "integrations": {
            "chaos": {**fast, "base_url": chaos_url},
            "deadline": {**fast, "base_url": chaos_url, "deadline": 0.2},
            "refused": {**fast, "base_url": f"http://127.0.0.1:{closed_port}"},
            "fragile": {
                **fast,
                "base_url": chaos_url + "/fail",
                # One circuit for the host (no route groups): its 5xx make the integration unavailable.
                "breaker": {"consecutive_failures": 2, "open_wait": 7, "routes": False},
            },
        }
    }
    integrations = Integrations(app, error_handlers=True)
    app.register_blueprint(integrations.health_blueprint(), url_prefix="/integrations")

    @app.get("/via/<name>/<path:path>")
    def via(name: str, path: str) -> Any:
        upstream = integrations[name].get("/" + path, params=request.args)
        # The body must be usable: a malformed one raises MalformedResponseError here.
        return jsonify(upstream=upstream.normalized.raise_for_error().data)  # type: ignore[attr-defined]

    @app.get("/json/<path:names>")
    def plain_json(names: str) -> Any:
        # requests' own idiom: ``response.json()`` raises a JSONDecodeError carrying only the body.
        # Every call first, then every parse: the failing body need not be the last call's.
        calls = [spec.split(":") for spec in names.split(",")]
        responses = [integrations[name].get("/" + path) for name, path in calls]
        return jsonify(bodies=[response.json() for response in responses])

    return app, integrations


@pytest.fixture
def app(chaos_server: ChaosServer, closed_port: int) -> Iterator[Flask]:
    app, integrations = build_app(chaos_server.url, closed_port)
    yield app
    integrations.close(app)


@pytest.mark.parametrize(
    ("path", "status", "slug", "integration"),
    [
        ("/via/chaos/hang?seconds=2", 504, "upstream-timeout", "chaos"),
        ("/via/deadline/latency?ms=1000", 504, "upstream-timeout", "deadline"),
        ("/via/chaos/fail/500", 502, "upstream-error", "chaos"),
        ("/via/chaos/soap-fault", 502, "upstream-error", "chaos"),
        ("/via/chaos/malformed-json", 502, "upstream-malformed-response", "chaos"),
        ("/via/refused/anything", 502, "upstream-unreachable", "refused"),
        ("/via/chaos/reset", 502, "upstream-unreachable", "chaos"),
        ("/via/chaos/fail/401", 502, "upstream-auth-failed", "chaos"),
        ("/via/chaos/fail/404", 502, "upstream-rejected", "chaos"),
    ],
)
def test_upstream_failures_become_problem_responses(
    app: Flask, path: str, status: int, slug: str, integration: str
) -> None:
    response = app.test_client().get(path, headers={"X-Request-ID": "live-1"})
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["type"].endswith(":" + slug)
    assert body["status"] == status
    assert body["integration"] == integration
    assert body["request_id"] == "live-1"
    assert "chaos" not in body["detail"] or integration == "chaos"
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_a_healthy_call_passes_through(app: Flask) -> None:
    response = app.test_client().get("/via/chaos/ok")
    assert response.status_code == 200
    assert response.get_json()["upstream"]["ok"] is True


def test_tripped_breaker_answers_503_with_retry_after_without_calling(
    app: Flask, chaos_server: ChaosServer
) -> None:
    client = app.test_client()
    assert client.get("/via/fragile/502").status_code == 502
    assert client.get("/via/fragile/502").status_code == 502
    refused = client.get("/via/fragile/502")
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "7"
    body = refused.get_json(force=True)
    assert body["type"].endswith(":upstream-circuit-open")
    assert body["integration"] == "fragile"
    assert chaos_server.calls("/fail/502") == 2  # the third call never left the process


def test_health_through_open_and_close(
    app: Flask, chaos_server: ChaosServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    fragile = app.extensions[EXTENSION_KEY]["fragile"]
    # The process-wide store: put its clock back after the test, or later tests see time frozen.
    monkeypatch.setattr(fragile.breaker.store, "clock", clock)
    host = fragile.breaker.key_for(chaos_server.url)
    client = app.test_client()

    def health() -> tuple[int, dict[str, Any]]:
        response = client.get("/integrations/health")
        return response.status_code, response.get_json()["integrations"]["fragile"]

    status, report = health()
    assert status == 200
    assert report["circuits"][host]["state"] == "closed"
    assert report["last_error"] is None

    for _ in range(2):
        client.get("/via/fragile/503")
    status, report = health()
    assert status == 503
    assert report["status"] == "unavailable"
    assert report["circuits"][host] == {
        "state": "open",
        "retry_in": 7.0,
        "failure_rate": 0.0,
        "consecutive_failures": 0,
        "trips": 1,
    }
    assert report["last_error"]["type"] == "status 503"

    clock.now += 7.0  # the open wait is over: the next call is a probe, so the health is 200 again
    status, report = health()
    assert (status, report["status"]) == (200, "degraded")

    # times=1: the first call to /fail/502 fails, later ones succeed. The probe fails: open again,
    # with a doubled wait.
    assert client.get("/via/fragile/502?times=1").status_code == 502
    status, report = health()
    assert status == 503
    assert report["circuits"][host]["state"] == "open"
    assert report["circuits"][host]["retry_in"] == 14.0

    clock.now += 14.0
    assert client.get("/via/fragile/502?times=1").status_code == 200  # this probe succeeds
    status, report = health()
    assert status == 200
    assert report["status"] == "ok"
    assert report["circuits"][host]["state"] == "closed"


@pytest.mark.parametrize(
    ("names", "integration"),
    [
        ("chaos:malformed-json", "chaos"),
        ("deadline:ok,chaos:malformed-json", "chaos"),
        ("chaos:malformed-json,deadline:ok", "chaos"),  # the body names it, not the last call
        ("chaos:ok,deadline:malformed-json", "deadline"),
    ],
)
def test_a_malformed_body_parsed_with_response_json_names_its_integration(
    app: Flask, chaos_server: ChaosServer, names: str, integration: str
) -> None:
    app.config["RESILIENT_EXPOSE_UPSTREAM_DETAILS"] = True
    response = app.test_client().get("/json/" + names, headers={"X-Request-ID": "json-1"})
    assert (response.status_code, response.mimetype) == (502, "application/problem+json")
    body = response.get_json(force=True)
    assert body["type"].endswith(":upstream-malformed-response")
    assert body["integration"] == integration
    assert body["detail"] == f"The {integration!r} upstream sent a response that could not be used."
    assert body["upstream"]["url"] == chaos_server.url + "/malformed-json"
    assert body["upstream"]["attempts"] == 1
    assert chaos_server.calls("/malformed-json") == 1


def test_a_malformed_body_after_a_cross_origin_redirect_names_its_integration(
    app: Flask, chaos_server: ChaosServer
) -> None:
    # The body arrives from the second origin, which no integration's base_url covers.
    response = app.test_client().get("/via/chaos/redirect?to=/malformed-json&cross=1")
    assert response.status_code == 502
    body = response.get_json(force=True)
    assert body["type"].endswith(":upstream-malformed-response")
    assert body["integration"] == "chaos"
    assert chaos_server.calls("/redirect") == 1 and chaos_server.calls("/malformed-json") == 1


def test_request_id_reaches_the_upstream(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/via/chaos/echo", headers={"X-Request-ID": "trace-me-7"})
    received = {k.lower(): v for k, v in response.get_json()["upstream"]["headers"].items()}
    assert received["x-request-id"] == "trace-me-7"
    assert response.headers["X-Request-ID"] == "trace-me-7"

    generated = client.get("/via/chaos/echo")
    received = {k.lower(): v for k, v in generated.get_json()["upstream"]["headers"].items()}
    assert received["x-request-id"] == generated.headers["X-Request-ID"]


def test_threaded_server_shares_sessions_and_keeps_request_ids_apart(
    chaos_server: ChaosServer, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[int] = []
    real_load = rs_flask.load_integrations  # type: ignore[attr-defined]

    def counting_load(source: Any) -> dict[str, ResilientSession]:
        builds.append(1)
        return real_load(source)

    monkeypatch.setattr(rs_flask, "load_integrations", counting_load)
    app, integrations = build_app(chaos_server.url, closed_port)

    @app.get("/who")
    def who() -> Any:
        session = integrations["chaos"]
        echoed = session.get("/echo", params={"n": request.args["n"]}).json()
        headers = {k.lower(): v for k, v in echoed["headers"].items()}
        return jsonify(session=id(session), thread=threading.get_ident(), upstream_id=headers["x-request-id"])

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/who"
    threads, per_thread = 8, 15

    def worker(index: int) -> list[tuple[str, dict[str, Any], str]]:
        results = []
        with requests.Session() as client:
            for call in range(per_thread):
                request_id = f"t{index}-c{call}"
                response = client.get(url, params={"n": call}, headers={"X-Request-ID": request_id})
                results.append((request_id, response.json(), response.headers["X-Request-ID"]))
        return results

    try:
        with ThreadPoolExecutor(threads) as pool:
            results = [item for batch in pool.map(worker, range(threads)) for item in batch]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        integrations.close(app)

    assert len(results) == threads * per_thread
    for request_id, body, echoed in results:
        assert body["upstream_id"] == request_id
        assert echoed == request_id
    assert {body["session"] for _, body, _ in results} == {id(app.extensions[EXTENSION_KEY]["chaos"])}
    assert len({body["thread"] for _, body, _ in results}) > 1  # really served concurrently
    assert builds == [1]
    assert chaos_server.calls("/echo") == threads * per_thread


def test_gateway_example_degrades_when_reviews_is_down(chaos_server: ChaosServer) -> None:
    path = Path(__file__).parents[2] / "examples" / "flask_gateway" / "app.py"
    spec = importlib.util.spec_from_file_location("flask_gateway_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    app = example.create_app(example._demo_config(chaos_server))
    client = app.test_client()
    try:
        assert client.get("/products/1").get_json()["degraded"] == []
        app.config["UPSTREAM_MODES"]["reviews"] = "down"
        degraded = client.get("/products/1", headers={"X-Request-ID": "ex-1"})
        assert degraded.status_code == 200
        assert degraded.get_json()["degraded"] == ["reviews"]
        assert degraded.get_json()["catalog"]["upstream_request_id"] == "ex-1"
        app.config["UPSTREAM_MODES"]["catalog"] = "down"
        failed = client.get("/products/1")
        assert failed.status_code == 502
        assert failed.get_json(force=True)["integration"] == "catalog"
    finally:
        example.integrations.close(app)


@pytest.mark.parametrize(
    "retry_after", ["1e999", "9" * 400, "nan", "-1e999", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
def test_a_hostile_retry_after_from_upstream_never_crashes_the_handler(retry_after: str) -> None:
    from tests.integration.upstream import Reply, Upstream

    with Upstream() as upstream:
        url = upstream.script("/limited", Reply(status=429, body=b"{}", headers={"Retry-After": retry_after}))
        app = Flask(__name__)
        app.config["RESILIENT_INTEGRATIONS"] = {
            "integrations": {"api": {"base_url": upstream.url, "retry": False, "raise_for_status": True}}
        }
        integrations = Integrations(app, error_handlers=True)

        @app.get("/via")
        def via() -> Any:
            integrations["api"].get(url)
            return "unreachable"

        try:
            response = app.test_client().get("/via")
        finally:
            integrations.close(app)
    assert response.status_code != 500
    assert response.mimetype == "application/problem+json"
    if "Retry-After" in response.headers:
        assert 1 <= int(response.headers["Retry-After"]) <= 86400
