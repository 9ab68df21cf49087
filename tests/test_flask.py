"""The Flask integration without sockets: config, lifecycle, problem mapping, request ids, health.

Upstream answers come from ``responses``; real-server behaviour is in tests/integration/test_flask_live.py.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from flask import Flask, jsonify

from resilient_session import (
    APIConnectionError,
    AuthenticationError,
    BulkheadFullError,
    CircuitOpenError,
    ClientError,
    ConfigurationError,
    DeadlineExceededError,
    InvalidConfigError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    ResilientSession,
    RetryExhaustedError,
    ServerError,
)
from resilient_session.contrib.flask import (
    EXTENSION_KEY,
    AppIntegrations,
    Integrations,
    problem_for,
    register_error_handlers,
)
from resilient_session.errors import (
    APIConnectTimeout,
    APIReadTimeout,
    IncompleteBodyError,
    OAuth2TokenError,
    QuotaExceededError,
    StalledBodyError,
    TokenEndpointError,
    TokenEndpointTimeout,
)
from resilient_session.observe import current_request_id

BILLING = "https://billing.test/v1"
CRM = "https://crm.test"

CONFIG: dict[str, Any] = {
    "integrations": {
        "billing": {"base_url": BILLING, "retry": False, "raise_for_status": True},
        "crm": {
            "base_url": CRM,
            "retry": False,
            "breaker": {"consecutive_failures": 2, "open_wait": 10},
        },
    }
}


def make_app(config: Any = CONFIG, **kwargs: Any) -> tuple[Flask, Integrations]:
    app = Flask(__name__)
    app.config["RESILIENT_INTEGRATIONS"] = config
    integrations = Integrations(app, **kwargs)
    return app, integrations


@pytest.fixture
def app() -> Iterator[Flask]:
    app, integrations = make_app(error_handlers=True)
    app.register_blueprint(integrations.health_blueprint(), url_prefix="/integrations")

    @app.get("/billing/<path:path>")
    def billing(path: str) -> Any:
        return integrations["billing"].get("/" + path).json()

    @app.get("/crm/<path:path>")
    def crm(path: str) -> Any:
        response = integrations["crm"].get("/" + path)
        return jsonify(status=response.status_code)

    yield app
    integrations.close(app)


# -- configuration and lifecycle --------------------------------------------------------------------


def test_sessions_are_built_from_a_mapping_and_reachable_three_ways() -> None:
    app, integrations = make_app()
    with app.app_context():
        billing = integrations["billing"]
        assert isinstance(billing, ResilientSession)
        assert billing.base_url == BILLING
        assert billing.integration == "billing"
        assert integrations.get("billing") is billing
        assert integrations.get("nope") is None
        assert sorted(integrations) == ["billing", "crm"]
        assert len(integrations) == 2
        assert app.extensions[EXTENSION_KEY]["billing"] is billing
        assert hash(integrations) != hash(app.extensions[EXTENSION_KEY])  # both hashable
        assert integrations != app.extensions[EXTENSION_KEY]
    # Outside an app context the app given to the constructor is used.
    assert integrations["crm"] is app.extensions[EXTENSION_KEY]["crm"]
    integrations.close()


def test_sessions_are_built_from_a_toml_path(tmp_path: Path) -> None:
    path = tmp_path / "integrations.toml"
    path.write_text('[integrations.crm]\nbase_url = "https://crm.test"\ntimeout = 2\n')
    _, integrations = make_app(str(path))
    assert integrations["crm"].timeout == (2.0, 2.0)
    integrations.close()


def test_unknown_integration_names_the_defined_ones() -> None:
    _, integrations = make_app()
    with pytest.raises(KeyError, match=r"no integration 'stripe' \(defined: billing, crm\)"):
        integrations["stripe"]
    integrations.close()


def test_app_factory_gives_each_app_its_own_sessions() -> None:
    integrations = Integrations()
    apps = []
    for _ in range(2):
        app = Flask(__name__)
        app.config["RESILIENT_INTEGRATIONS"] = CONFIG
        integrations.init_app(app)
        apps.append(app)
    with apps[0].app_context():
        first = integrations["billing"]
    with apps[1].app_context():
        second = integrations["billing"]
    assert first is not second
    assert integrations.sessions(apps[0])["billing"] is first
    with pytest.raises(RuntimeError, match="no app"):
        integrations["billing"]
    for app in apps:
        integrations.close(app)


def test_missing_config_key_is_a_configuration_error() -> None:
    app = Flask(__name__)
    with pytest.raises(ConfigurationError, match="RESILIENT_INTEGRATIONS"):
        Integrations(app)


def test_invalid_file_fails_at_init_listing_every_problem() -> None:
    app = Flask(__name__)
    app.config["RESILIENT_INTEGRATIONS"] = {"integrations": {"x": {"base_url": "ftp://x", "colour": 1}}}
    with pytest.raises(InvalidConfigError) as caught:
        Integrations(app)
    assert len(caught.value.problems) == 2
    assert EXTENSION_KEY not in app.extensions


def test_init_app_twice_is_refused() -> None:
    app, integrations = make_app()
    with pytest.raises(ConfigurationError, match="already set up"):
        integrations.init_app(app)
    integrations.close()


def test_close_closes_every_session_once_and_unregisters_the_exit_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered: list[Any] = []
    unregistered: list[Any] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(atexit, "unregister", unregistered.append)
    app, integrations = make_app()
    state = app.extensions[EXTENSION_KEY]
    assert registered == [state.close]
    closed: list[str] = []
    for name, session in state.items():
        monkeypatch.setattr(session, "close", lambda name=name: closed.append(name))
    integrations.close()
    integrations.close()
    assert sorted(closed) == ["billing", "crm"]
    assert unregistered == [state.close]
    assert "closed" in repr(state)


def test_sessions_are_not_closed_per_request(app: Flask) -> None:
    closed: list[str] = []
    for name, session in app.extensions[EXTENSION_KEY].items():
        session.close = lambda name=name: closed.append(name)
    with responses.RequestsMock() as mock:
        mock.get(BILLING + "/ok", json={"ok": True})
        assert app.test_client().get("/billing/ok").status_code == 200
    assert closed == []


# -- problem mapping --------------------------------------------------------------------------------


def _status_error(cls: type[Any], status: int, url: str = BILLING + "/x", **kwargs: Any) -> Any:
    return cls(f"{status}", url=url, method="GET", status=status, **kwargs)


MAPPING = [
    (APIReadTimeout("slow", url=BILLING), 504, "upstream-timeout"),
    (APIConnectTimeout("slow", url=BILLING), 504, "upstream-timeout"),
    (DeadlineExceededError("late", url=BILLING), 504, "upstream-timeout"),
    (StalledBodyError("stalled", url=BILLING), 504, "upstream-timeout"),
    (TokenEndpointTimeout("token slow", url=BILLING), 504, "upstream-timeout"),
    (CircuitOpenError("open", host="h", retry_in=2.2, url=BILLING), 503, "upstream-circuit-open"),
    (BulkheadFullError("full", url=BILLING), 503, "upstream-busy"),
    (QuotaExceededError("no slot", key="billing", retry_after=2.5, url=BILLING), 503, "upstream-quota"),
    (_status_error(RateLimitedError, 429, retry_after=1.5), 503, "upstream-rate-limited"),
    (_status_error(ServerError, 500), 502, "upstream-error"),
    (_status_error(ServerError, 503), 502, "upstream-error"),
    (RetryExhaustedError("exhausted", url=BILLING, status=503), 502, "upstream-error"),
    (RetryExhaustedError("exhausted", url=BILLING, status=429), 503, "upstream-rate-limited"),
    (MalformedResponseError("cut", url=BILLING), 502, "upstream-malformed-response"),
    (APIConnectionError("refused", url=BILLING), 502, "upstream-unreachable"),
    (TokenEndpointError("token refused", url=BILLING), 502, "upstream-unreachable"),
    (IncompleteBodyError("broke", url=BILLING), 502, "upstream-unreachable"),
    (_status_error(AuthenticationError, 401), 502, "upstream-auth-failed"),
    (_status_error(AuthenticationError, 403), 502, "upstream-auth-failed"),
    (OAuth2TokenError("invalid_client", url=BILLING, status=401), 502, "upstream-auth-failed"),
    (_status_error(NotFoundError, 404), 502, "upstream-rejected"),
    (_status_error(ClientError, 422), 502, "upstream-rejected"),
    (ConfigurationError("BILLING_TOKEN is not set"), 500, "integration-misconfigured"),
]


@pytest.mark.parametrize(("error", "status", "slug"), MAPPING, ids=lambda v: type(v).__name__)
def test_each_typed_error_maps_to_its_status(error: Any, status: int, slug: str) -> None:
    problem = problem_for(error, integration="billing", request_id="r-1")
    assert (problem.status, problem.slug) == (status, slug)
    body = problem.to_dict(instance="/orders/7")
    assert list(body)[:5] == ["type", "title", "status", "detail", "instance"]
    assert body["type"] == "urn:resilient-session:problem:" + slug
    assert body["status"] == status
    assert body["integration"] == "billing"
    assert body["request_id"] == "r-1"
    assert "upstream" not in body
    # The detail is ours: it never repeats the error's own message.
    assert str(error.args[0]) not in body["detail"]


def test_retry_after_is_the_ceiling_of_the_wait_and_never_zero() -> None:
    assert problem_for(CircuitOpenError(retry_in=2.2)).retry_after == 3
    assert problem_for(CircuitOpenError(retry_in=0.0)).retry_after == 1
    assert problem_for(_status_error(RateLimitedError, 429, retry_after=0.4)).retry_after == 1
    assert problem_for(_status_error(RateLimitedError, 429)).retry_after is None
    assert problem_for(BulkheadFullError()).retry_after is None
    assert problem_for(QuotaExceededError(retry_after=2.5)).retry_after == 3
    assert problem_for(QuotaExceededError(retry_after=0.01)).retry_after == 1


@pytest.mark.parametrize("wait", [float("inf"), float("nan"), 1e400, 1e300, -float("inf")])
def test_retry_after_is_clamped_to_a_day_whatever_the_wait(wait: float) -> None:
    for error in (
        CircuitOpenError(retry_in=wait),
        _status_error(RateLimitedError, 429, retry_after=wait),
        QuotaExceededError(retry_after=wait),
    ):
        retry_after = problem_for(error).retry_after
        assert retry_after is not None and 1 <= retry_after <= 86400
        response = _raising_app(error).test_client().get("/boom")
        assert response.status_code != 500 and response.mimetype == "application/problem+json"
        assert 1 <= int(response.headers["Retry-After"]) <= 86400


def _raising_app(error: BaseException, **handler_kwargs: Any) -> Flask:
    app, _ = make_app()
    register_error_handlers(app, **handler_kwargs)

    @app.get("/boom")
    def boom() -> Any:
        raise error

    return app


SECRET = "sk_live_abcdef123456"


def _leaky_error() -> AuthenticationError:
    request = requests.Request("GET", f"{BILLING}/charges?api_key={SECRET}").prepare()
    response = requests.Response()
    response.request = request
    response.status_code = 401
    response._content = f'{{"error": "bad key {SECRET}", "authorization": "Bearer {SECRET}"}}'.encode()
    response._content_consumed = True  # type: ignore[attr-defined]
    return AuthenticationError(
        "401 Client Error",
        request=request,
        response=response,
        status=401,
    )


def test_handler_answers_problem_json_without_upstream_details() -> None:
    app = _raising_app(_leaky_error())
    response = app.test_client().get("/boom?x=1")
    assert response.status_code == 502
    assert response.mimetype == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json(force=True)
    assert body["integration"] == "billing"  # found from the error's URL
    assert body["instance"] == "/boom"
    assert body["request_id"] == response.headers["X-Request-ID"]
    text = response.get_data(as_text=True)
    for leak in (SECRET, "charges", "billing.test", "bad key"):
        assert leak not in text


def test_exposed_upstream_details_are_redacted() -> None:
    app = _raising_app(_leaky_error(), expose_upstream_details=True)
    response = app.test_client().get("/boom")
    upstream = response.get_json(force=True)["upstream"]
    assert upstream["status"] == 401
    assert upstream["url"] == f"{BILLING}/charges?api_key=***"
    assert upstream["error"] == "AuthenticationError"
    assert "bad key" in upstream["body"]
    assert SECRET not in response.get_data(as_text=True)


def test_expose_setting_is_read_from_config_at_each_error() -> None:
    app = _raising_app(_status_error(ServerError, 500))
    client = app.test_client()
    assert "upstream" not in client.get("/boom").get_json(force=True)
    app.config["RESILIENT_EXPOSE_UPSTREAM_DETAILS"] = True
    assert client.get("/boom").get_json(force=True)["upstream"]["status"] == 500


def test_problem_type_base_is_configurable() -> None:
    app = _raising_app(_status_error(ServerError, 500))
    app.config["RESILIENT_PROBLEM_TYPE_BASE"] = "https://docs.example.com/problems/"
    body = app.test_client().get("/boom").get_json(force=True)
    assert body["type"] == "https://docs.example.com/problems/upstream-error"


def test_circuit_open_sets_retry_after_header() -> None:
    app = _raising_app(CircuitOpenError("open", host="h", retry_in=4.01, url=CRM + "/a"))
    response = app.test_client().get("/boom")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json(force=True)["integration"] == "crm"


def test_error_from_an_unknown_host_has_no_integration() -> None:
    app = _raising_app(APIConnectionError("refused", url="https://other.test/x"))
    body = app.test_client().get("/boom").get_json(force=True)
    assert body["integration"] is None
    assert body["detail"] == "The connection to an upstream service failed."


def test_a_more_specific_app_handler_wins() -> None:
    app = _raising_app(_status_error(NotFoundError, 404))

    @app.errorhandler(NotFoundError)
    def not_found(error: NotFoundError) -> Any:
        return jsonify(missing=True), 404

    response = app.test_client().get("/boom")
    assert (response.status_code, response.get_json()) == (404, {"missing": True})


def test_error_handlers_are_opt_in() -> None:
    app, _ = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom() -> Any:
        raise _status_error(ServerError, 500)

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.mimetype != "application/problem+json"


def test_plain_requests_errors_from_a_view_are_upstream_problems() -> None:
    # crm has raise_for_status = false: the view uses requests' own idioms.
    app, integrations = make_app(error_handlers=True)

    @app.get("/crm/<path:path>")
    def crm(path: str) -> Any:
        response = integrations["crm"].get("/" + path)
        response.raise_for_status()
        return response.json()

    client = app.test_client()
    with responses.RequestsMock() as mock:
        mock.get(CRM + "/down", status=503, body=f"key {SECRET}")
        mock.get(CRM + "/denied", status=401)
        mock.get(CRM + "/limited", status=429, headers={"Retry-After": "7"})
        mock.get(CRM + "/cut", body='{"id": 4', content_type="application/json")
        answers = {path: client.get(f"/crm/{path}") for path in ("down", "denied", "limited", "cut")}
    expected = {
        "down": (502, "upstream-error"),
        "denied": (502, "upstream-auth-failed"),
        "limited": (503, "upstream-rate-limited"),
        "cut": (502, "upstream-malformed-response"),
    }
    for path, (status, slug) in expected.items():
        response = answers[path]
        body = response.get_json(force=True)
        assert (response.status_code, response.mimetype) == (status, "application/problem+json"), path
        assert body["type"].endswith(slug) and body["request_id"] == response.headers["X-Request-ID"]
        assert SECRET not in response.get_data(as_text=True)
    assert answers["limited"].headers["Retry-After"] == "7"
    assert answers["down"].get_json(force=True)["integration"] == "crm"
    assert answers["cut"].get_json(force=True)["integration"] == "crm"
    integrations.close()


def test_an_app_handler_for_http_error_is_kept() -> None:
    app = Flask(__name__)
    app.config["RESILIENT_INTEGRATIONS"] = CONFIG

    @app.errorhandler(requests.HTTPError)
    def own(error: requests.HTTPError) -> Any:
        return jsonify(own=True), 418

    @app.get("/boom")
    def boom() -> Any:
        raise requests.HTTPError("500 Server Error")

    integrations = Integrations(app, error_handlers=True)
    assert app.test_client().get("/boom").status_code == 418
    integrations.close()


def test_integration_for_prefers_the_longest_base_url() -> None:
    state = AppIntegrations(
        {
            "v1": ResilientSession(base_url="https://api.test/v1"),
            "v1-admin": ResilientSession(base_url="https://api.test/v1/admin/"),
        }
    )
    assert state.integration_for("https://api.test/v1/users") == "v1"
    assert state.integration_for("https://api.test/v1/admin/users") == "v1-admin"
    assert state.integration_for("https://api.test/v10/users") is None
    assert state.integration_for("https://api.test:8443/v1/users") is None
    assert state.integration_for(None) is None
    state.close()


# -- request ids ------------------------------------------------------------------------------------


def test_incoming_request_id_reaches_the_upstream_and_is_echoed(app: Flask) -> None:
    with responses.RequestsMock() as mock:
        call = mock.get(BILLING + "/ok", json={"ok": True})
        response = app.test_client().get("/billing/ok", headers={"X-Request-ID": "req-42"})
    assert response.headers["X-Request-ID"] == "req-42"
    assert call.calls[0].request.headers["X-Request-ID"] == "req-42"


def test_a_request_without_id_gets_one_shared_by_all_its_calls(app: Flask) -> None:
    @app.get("/both")
    def both() -> Any:
        integrations = app.extensions[EXTENSION_KEY]
        integrations["billing"].get("/a")
        integrations["crm"].get("/b")
        return jsonify(bound=current_request_id())

    with responses.RequestsMock() as mock:
        first = mock.get(BILLING + "/a", json={})
        second = mock.get(CRM + "/b", json={})
        response = app.test_client().get("/both")
    generated = response.headers["X-Request-ID"]
    assert len(generated) == 32
    assert response.get_json()["bound"] == generated
    assert first.calls[0].request.headers["X-Request-ID"] == generated
    assert second.calls[0].request.headers["X-Request-ID"] == generated
    assert current_request_id() is None  # unbound once the request ended


@pytest.mark.parametrize("incoming", ["a b", "x" * 129, "id\u00e9", ""])
def test_an_incoming_id_that_is_not_an_id_is_replaced(app: Flask, incoming: str) -> None:
    with responses.RequestsMock() as mock:
        call = mock.get(BILLING + "/ok", json={})
        response = app.test_client().get("/billing/ok", headers={"X-Request-ID": incoming})
    sent = call.calls[0].request.headers["X-Request-ID"]
    assert sent != incoming
    assert response.headers["X-Request-ID"] == sent


def test_request_id_header_is_configurable_and_can_be_off() -> None:
    app, integrations = make_app()
    app.config["RESILIENT_REQUEST_ID_HEADER"] = "X-Correlation-ID"

    @app.get("/id")
    def show() -> Any:
        return jsonify(bound=current_request_id())

    client = app.test_client()
    response = client.get("/id", headers={"X-Correlation-ID": "corr-1", "X-Request-ID": "other"})
    assert response.get_json() == {"bound": "corr-1"}
    assert response.headers["X-Correlation-ID"] == "corr-1"
    app.config["RESILIENT_REQUEST_ID_HEADER"] = None
    response = client.get("/id", headers={"X-Correlation-ID": "corr-2"})
    assert response.get_json() == {"bound": None}
    assert "X-Correlation-ID" not in response.headers
    integrations.close()


# -- health -----------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_health_reports_open_then_probe_ready_then_closed(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    crm = app.extensions[EXTENSION_KEY]["crm"]
    # The process-wide store: put its clock back after the test, or later tests see time frozen.
    monkeypatch.setattr(crm.breaker.store, "clock", clock)
    client = app.test_client()

    healthy = client.get("/integrations/health")
    assert healthy.status_code == 200
    assert healthy.headers["Cache-Control"] == "no-store"
    report = healthy.get_json()
    assert report["status"] == "ok"
    circuit = report["integrations"]["crm"]["circuits"]["https://crm.test:443"]
    assert circuit["state"] == "closed"
    assert report["integrations"]["crm"]["budget"]["https://crm.test:443"]["capacity"] == 500.0
    assert report["integrations"]["crm"]["last_error"] is None

    with responses.RequestsMock() as mock:
        mock.get(CRM + "/down", body=requests.exceptions.ConnectTimeout("connect timed out"))
        assert client.get("/crm/down").status_code == 504
        assert client.get("/crm/down").status_code == 504
    opened = client.get("/integrations/health")
    assert opened.status_code == 503
    crm_report = opened.get_json()["integrations"]["crm"]
    assert crm_report["status"] == "unavailable"
    assert crm_report["circuits"]["https://crm.test:443"]["state"] == "open"
    assert crm_report["circuits"]["https://crm.test:443"]["retry_in"] == 10.0
    assert crm_report["last_error"]["type"] == "APIConnectTimeout"
    assert opened.get_json()["integrations"]["billing"]["status"] == "ok"

    clock.now += 10.0  # the open wait is over: the next call probes, so not "down" any more
    ready = client.get("/integrations/health")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "degraded"

    with responses.RequestsMock() as mock:
        mock.get(CRM + "/up", json={})
        assert client.get("/crm/up").get_json() == {"status": 200}
    closed = client.get("/integrations/health").get_json()
    assert closed["status"] == "ok"
    assert closed["integrations"]["crm"]["circuits"]["https://crm.test:443"]["state"] == "closed"


def test_health_reports_a_route_groups_open_circuit_as_degraded(app: Flask) -> None:
    """503s from one path open only its route group's circuit: the integration's other paths work, so
    the report says degraded (HTTP 200), and names the group's circuit."""
    client = app.test_client()
    with responses.RequestsMock() as mock:
        mock.get(CRM + "/down", status=503)
        mock.get(CRM + "/up", json={})
        assert [client.get("/crm/down").get_json() for _ in range(2)] == [{"status": 503}] * 2
        assert client.get("/crm/up").get_json() == {"status": 200}
    report = client.get("/integrations/health")
    assert report.status_code == 200
    crm_report = report.get_json()["integrations"]["crm"]
    assert crm_report["status"] == "degraded"
    assert crm_report["circuits"]["https://crm.test:443 /down"]["state"] == "open"
    assert crm_report["circuits"]["https://crm.test:443 /up"]["state"] == "closed"
    assert crm_report["circuits"]["https://crm.test:443"]["state"] == "closed"


def test_health_blueprint_is_under_integrations_by_default() -> None:
    app, integrations = make_app()
    app.register_blueprint(integrations.health_blueprint())
    app.register_blueprint(integrations.health_blueprint("moved", url_prefix="/ops"))
    client = app.test_client()
    assert client.get("/integrations/health").get_json()["status"] == "ok"
    assert client.get("/ops/health").status_code == 200
    integrations.close()


def test_health_lists_hosts_called_outside_base_url(app: Flask) -> None:
    crm = app.extensions[EXTENSION_KEY]["crm"]
    with responses.RequestsMock() as mock:
        mock.get("https://files.crm.test/a", json={})
        crm.get("https://files.crm.test/a")
    circuits = app.test_client().get("/integrations/health").get_json()["integrations"]["crm"]["circuits"]
    # The route group's circuit of the call, too.
    assert set(circuits) == {
        "https://crm.test:443",
        "https://files.crm.test:443",
        "https://files.crm.test:443 /a",
    }


def test_health_reports_an_unreadable_store_as_unavailable(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = app.extensions[EXTENSION_KEY]["crm"].breaker.store

    def down(*args: Any) -> Any:
        raise ConnectionError("store down")

    monkeypatch.setattr(store, "run", down)
    response = app.test_client().get("/integrations/health")
    assert response.status_code == 503
    crm = response.get_json()["integrations"]["crm"]
    assert crm["status"] == "unknown"
    assert crm["circuits"] == {"error": "ConnectionError"}


def test_refusals_by_an_open_circuit_are_not_recorded_as_upstream_errors(app: Flask) -> None:
    state = app.extensions[EXTENSION_KEY]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(CRM + "/boom", body=requests.ConnectionError("refused"))
        for _ in range(2):
            with pytest.raises(APIConnectionError):
                state["crm"].get("/boom")
        recorded = state.health()[0]["integrations"]["crm"]["last_error"]
        with pytest.raises(CircuitOpenError):
            state["crm"].get("/boom")
        assert len(mock.calls) == 2
    assert recorded["type"] == "APIConnectionError"
    assert state.health()[0]["integrations"]["crm"]["last_error"] == recorded


def test_names_that_left_the_extension_module_still_import_from_it_with_a_warning() -> None:
    import importlib
    import warnings

    from resilient_session.contrib.flask import extension

    moved = {name: (module, name) for name, module in extension._MOVED.items()} | extension._RENAMED
    assert len(moved) > 15
    for name, (module, target) in moved.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getattr(extension, name)
        home = f"resilient_session.contrib.flask.{module}"
        assert value is getattr(importlib.import_module(home), target), name
        assert [w.category for w in caught] == [DeprecationWarning], name
        assert home in str(caught[0].message)
    with pytest.raises(AttributeError):
        extension.no_such_name  # noqa: B018
