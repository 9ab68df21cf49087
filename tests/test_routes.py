"""Route groups: which circuit a path belongs to, and which evidence counts against which circuit."""

from __future__ import annotations

import pickle
import socket

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError, ReadTimeoutError

from resilient_session import CircuitBreaker, CircuitOpenError, ResilientSession
from resilient_session.errors import APIConnectionError, APIConnectTimeout, APIReadTimeout, APISSLError
from resilient_session.policies import CircuitState
from resilient_session.policies.routes import DEFAULT_GROUP, RouteGroups, group_for, is_connection_failure
from resilient_session.stores import MemoryStore

HOST = "https://api.example.com:443"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- grouping --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "base_url", "group"),
    [
        ("https://api.example.com/users/42", None, "/users"),
        ("https://api.example.com/users", None, "/users"),
        ("https://api.example.com/v1/users/42/orders", None, "/v1/users"),
        ("https://api.example.com/api/v2/reports?x=1", None, "/api/v2/reports"),
        ("https://api.example.com/v2beta1/line-items", None, "/v2beta1/line-items"),
        ("https://api.example.com/v1/users", "https://api.example.com/v1", "/v1/users"),
        ("https://api.example.com/base/x/users", "https://api.example.com/base/x/", "/base/x/users"),
        ("https://api.example.com/users", "https://api.example.com/v1", "/users"),  # not under base
        ("https://api.example.com/42/orders", None, DEFAULT_GROUP),  # an id first
        ("https://api.example.com/cus_9s8d7f6a", None, DEFAULT_GROUP),
        ("https://api.example.com/3f2504e0-4f89-11d3-9a0c-0305e82c3301", None, DEFAULT_GROUP),
        ("https://api.example.com/", None, DEFAULT_GROUP),
        ("https://api.example.com", None, DEFAULT_GROUP),
        ("https://api.example.com/%40me", None, DEFAULT_GROUP),
        ("https://api.example.com/v1", "https://api.example.com/v1", DEFAULT_GROUP),
        ("https://api.example.com/oauth2/token", None, "/oauth2"),
        ("https://api.example.com?next=/users", None, DEFAULT_GROUP),  # a "/" in the query is no path
        ("https://api.example.com#/users", None, DEFAULT_GROUP),
        ("https://api.example.com/reports?next=/users#x", None, "/reports"),
        ("http://[::1]:8080/users/1", None, "/users"),
        ("/users/1?x=2", None, "/users"),  # a path alone
    ],
)
def test_the_default_groups_by_the_first_resource_segment(url: str, base_url: str | None, group: str) -> None:
    assert group_for(True, url, base_url) == group


def test_no_groups_when_routes_are_off() -> None:
    assert group_for(False, "https://api.example.com/users") is None


def test_a_mapping_groups_by_the_longest_prefix_or_template() -> None:
    routes = RouteGroups.of(
        {
            "/v1/reports": "reports",
            "/v1/users": "users",
            "/v1/users/{id}/orders": "orders",
            "/v1/users/me/orders": "my-orders",
            "/v1/exports": "reports",
        }
    )
    assert routes.group("/v1/reports") == "reports"
    assert routes.group("/v1/reports/9/csv") == "reports"
    assert routes.group("/v1/exports/1") == "reports"  # two prefixes, one group
    assert routes.group("/v1/reportsx") == DEFAULT_GROUP  # segment boundaries only
    assert routes.group("/v1/users/42") == "users"
    assert routes.group("/v1/users/42/orders/7") == "orders"
    assert routes.group("/v1/users/me/orders") == "my-orders"  # a literal beats a template
    assert routes.group("/v2/users") == DEFAULT_GROUP
    assert group_for(routes, "https://api.example.com/v1/users/1/orders?page=2") == "orders"


@pytest.mark.parametrize(
    ("mapping", "error"),
    [
        ({"reports": "r"}, ValueError),
        ({"/a/{x": "g"}, ValueError),
        ({"/a": ""}, ValueError),
        ({"/a": 3}, ValueError),
        ({3: "g"}, ValueError),
    ],
)
def test_a_bad_pattern_or_group_is_refused(mapping: dict[object, object], error: type[Exception]) -> None:
    with pytest.raises(error, match="routes"):
        CircuitBreaker(routes=mapping)  # type: ignore[arg-type]


def test_routes_that_are_not_a_mapping_are_refused() -> None:
    with pytest.raises(TypeError, match="routes must be"):
        CircuitBreaker(routes=["/a"])  # type: ignore[arg-type]


def test_a_breaker_with_a_mapping_stays_immutable_hashable_and_picklable() -> None:
    breaker = CircuitBreaker(routes={"/v1/reports": "reports"}, store=MemoryStore())
    assert isinstance(breaker.routes, RouteGroups)
    assert hash(breaker) == hash(breaker.new())
    copy = pickle.loads(pickle.dumps(breaker))
    assert copy.routes == breaker.routes
    assert copy.route_key_for("https://api.example.com/v1/reports/1") == HOST + " reports"
    assert "reports" in repr(breaker)


# -- evidence --------------------------------------------------------------------------------------


def _refused() -> APIConnectionError:
    cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return APIConnectionError(MaxRetryError(None, "/x", cause))  # type: ignore[arg-type]


def test_which_errors_say_the_host_is_unreachable() -> None:
    assert is_connection_failure(_refused())
    assert is_connection_failure(APIConnectTimeout("connect timed out"))
    assert is_connection_failure(APISSLError("handshake failed"))
    assert is_connection_failure(requests.exceptions.ConnectionError(ConnectionRefusedError(111, "refused")))
    unknown = NameResolutionError("api.example.com", None, socket.gaierror(-2, "Name or service not known"))  # type: ignore[arg-type]
    assert is_connection_failure(APIConnectionError(MaxRetryError(None, "/x", unknown)))  # type: ignore[arg-type]
    read = ReadTimeoutError(None, "/x", "read timed out")  # type: ignore[arg-type]
    assert not is_connection_failure(APIReadTimeout(MaxRetryError(None, "/x", read)))  # type: ignore[arg-type]
    assert not is_connection_failure(requests.exceptions.ChunkedEncodingError("broken"))
    assert not is_connection_failure(requests.exceptions.ConnectionError("reset by peer"))


def _answer(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


def _request(url: str) -> requests.PreparedRequest:
    return requests.Request("GET", url).prepare()


def test_failure_statuses_open_only_the_routes_circuit() -> None:
    breaker = CircuitBreaker(consecutive_failures=2, store=MemoryStore(clock=Clock()))
    reports, users = _request("https://api.example.com/reports/1"), _request("https://api.example.com/users")
    for _ in range(2):
        breaker.record(breaker.acquire(HOST, reports), response=_answer(503))
    with pytest.raises(CircuitOpenError) as refused:
        breaker.acquire(HOST, reports)
    assert refused.value.host == HOST + " /reports"
    permit = breaker.acquire(HOST, users)
    assert permit.route == HOST + " /users" and not permit.probe
    assert breaker.state(HOST).state is CircuitState.CLOSED
    assert breaker.state(HOST + " /reports").state is CircuitState.OPEN


def test_connection_failures_open_the_origins_circuit_for_every_route() -> None:
    breaker = CircuitBreaker(consecutive_failures=2, store=MemoryStore(clock=Clock()))
    reports, users = _request("https://api.example.com/reports"), _request("https://api.example.com/users")
    breaker.record(breaker.acquire(HOST, reports), error=_refused())
    breaker.record(breaker.acquire(HOST, users), error=APIConnectTimeout("connect timed out"))
    for request in (reports, users):
        with pytest.raises(CircuitOpenError) as refused:
            breaker.acquire(HOST, request)
        assert refused.value.host == HOST
    assert breaker.state(HOST + " /reports").state is CircuitState.CLOSED  # never counted there


def test_an_answer_resets_the_origins_consecutive_connection_failures() -> None:
    breaker = CircuitBreaker(consecutive_failures=2, store=MemoryStore(clock=Clock()))
    reports = _request("https://api.example.com/reports")
    breaker.record(breaker.acquire(HOST, reports), error=_refused())
    breaker.record(breaker.acquire(HOST, reports), response=_answer(503))  # the host answered
    breaker.record(breaker.acquire(HOST, reports), error=_refused())
    assert breaker.state(HOST).state is CircuitState.CLOSED
    assert breaker.state(HOST).consecutive_failures == 1


def test_a_route_refusal_hands_back_the_origins_probe_slot() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    patient = CircuitBreaker(consecutive_failures=1, open_wait=20, store=store)
    breaker = CircuitBreaker(consecutive_failures=1, open_wait=5, store=store)
    reports, users = _request("https://api.example.com/reports"), _request("https://api.example.com/users")
    patient.record(patient.acquire(HOST, reports), response=_answer(503))  # /reports open for 20 s
    breaker.record(breaker.acquire(HOST, users), error=_refused())  # the origin open for 5 s
    clock.now += 6.0
    store.forget_hints()  # as in another process sharing the store: only the store knows
    with pytest.raises(CircuitOpenError) as refused:
        breaker.acquire(HOST, reports)  # the origin granted its probe, the group refused
    assert refused.value.host == HOST + " /reports"
    assert breaker.state(HOST).state is CircuitState.HALF_OPEN
    probe = breaker.acquire(HOST, users)  # so the probe slot is free for another group's call
    assert probe.probe
    breaker.record(probe, response=_answer(200))
    assert breaker.state(HOST).state is CircuitState.CLOSED
    assert breaker.state(HOST + " /reports").state is CircuitState.OPEN


@responses.activate
def test_a_session_refuses_an_open_group_before_preparing_and_lets_other_groups_through() -> None:
    responses.add(responses.POST, "https://api.example.com/v1/reports", status=503)
    responses.add(responses.GET, "https://api.example.com/v1/users", json=[])
    session = ResilientSession(base_url="https://api.example.com/v1", retry=False)
    for _ in range(5):
        assert session.post("/reports", json={}).status_code == 503
    with pytest.raises(CircuitOpenError) as refused:
        session.post("/reports", json={})
    assert refused.value.host == HOST + " /v1/reports"
    assert session.get("/users").status_code == 200
    assert len(responses.calls) == 6


@responses.activate
def test_routes_false_keeps_one_circuit_per_origin() -> None:
    responses.add(responses.POST, "https://api.example.com/v1/reports", status=503)
    responses.add(responses.GET, "https://api.example.com/v1/users", json=[])
    session = ResilientSession(retry=False, breaker=CircuitBreaker(routes=False))
    for _ in range(5):
        session.post("https://api.example.com/v1/reports", json={})
    with pytest.raises(CircuitOpenError) as refused:
        session.get("https://api.example.com/v1/users")
    assert refused.value.host == HOST


def test_the_integrations_file_takes_routes_and_check_shows_them() -> None:
    from resilient_session.config import load_config

    configs = load_config(
        {
            "integrations": {
                "crm": {
                    "base_url": "https://crm.example.com/v1",
                    "breaker": {"routes": {"/v1/reports": "reports", "/v1/users/{id}/orders": "orders"}},
                },
                "flat": {"base_url": "https://flat.example.com", "breaker": {"routes": False}},
                "plain": {"base_url": "https://plain.example.com"},
            }
        }
    )
    crm = configs["crm"]
    assert crm.breaker is not None
    assert crm.breaker.route_key_for("https://crm.example.com/v1/users/9/orders") == (
        "https://crm.example.com:443 orders"
    )
    assert "routes={'/v1/reports': 'reports'" in crm.describe()["breaker"]
    assert crm.policy()["breaker"]["routes"] == {"/v1/reports": "reports", "/v1/users/{id}/orders": "orders"}
    assert "routes=off" in configs["flat"].describe()["breaker"]
    assert configs["flat"].policy()["breaker"]["routes"] is False
    assert "routes" not in configs["plain"].describe()["breaker"]
    assert configs["plain"].policy()["breaker"]["routes"] is True


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        ("yes", "expected true, false or a table"),
        ({"reports": "r"}, 'starting with "/"'),
        ({"/a/{x": "g"}, "neither literal nor a {name} template"),
        ({"/a": ""}, "non-empty string"),
    ],
)
def test_the_integrations_file_reports_bad_routes(routes: object, problem: str) -> None:
    from resilient_session import InvalidConfigError
    from resilient_session.config import load_config

    with pytest.raises(InvalidConfigError) as caught:
        load_config(
            {"integrations": {"a": {"base_url": "https://a.example.com", "breaker": {"routes": routes}}}}
        )
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("integrations.a.breaker.routes: ")
    assert problem in caught.value.problems[0]
