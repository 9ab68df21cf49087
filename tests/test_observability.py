"""Log lines, event callbacks and request ids (``responses`` mocks; real retries on a loopback server)."""

from __future__ import annotations

import copy
import logging
import pickle
from collections.abc import Iterator

import pytest
import requests
import responses

from resilient_session import (
    APIConnectionError,
    CircuitBreaker,
    CircuitOpenError,
    ResilientSession,
    RetryBudget,
    RetryPolicy,
)
from resilient_session._call import CallState
from resilient_session.observe import BudgetExhausted, CallEvent, Events, bind_request_id, current_request_id
from resilient_session.observe.observer import begin_call
from resilient_session.policies import StateChange
from tests.integration.upstream import Reply, Upstream

FAST = RetryPolicy(3, backoff_factor=0.0)
FIELDS = (
    "integration",
    "method",
    "url",
    "status",
    "attempt",
    "elapsed_ms",
    "outcome",
    "request_id",
    "breaker_state",
)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as rsps:
        yield rsps


def ours(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "resilient_session" and r.levelno == level]


def call_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The per-call INFO lines (the retry policy's own "retrying ..." INFO lines excluded)."""
    return [r for r in ours(caplog, logging.INFO) if not r.getMessage().startswith("retrying")]


# -- logging ------------------------------------------------------------------------------------------


def test_one_info_line_per_call_with_every_field(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mock.get("https://api.test/users", status=503)
    mock.get("https://api.test/users", status=200, json={"id": 1})
    session = ResilientSession(retry=FAST, integration="users-api")
    with caplog.at_level(logging.INFO, logger="resilient_session"):
        session.get("https://api.test/users?api_key=SECRET-KEY-1")
    (line,) = call_lines(caplog)
    assert all(hasattr(line, name) for name in FIELDS)
    assert line.integration == "users-api"  # type: ignore[attr-defined]
    assert (line.method, line.status, line.attempt, line.outcome) == ("GET", 200, 2, "ok")  # type: ignore[attr-defined]
    assert line.url == "https://api.test/users?api_key=***"  # type: ignore[attr-defined]
    assert isinstance(line.elapsed_ms, float) and line.elapsed_ms >= 0  # type: ignore[attr-defined]
    assert line.request_id == mock.calls[0].request.headers["X-Request-ID"]  # type: ignore[attr-defined]
    assert line.breaker_state == "closed"  # type: ignore[attr-defined]  # the default breaker
    assert "SECRET-KEY-1" not in caplog.text


def test_a_debug_line_per_attempt(mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    mock.get("https://api.test/x", status=502)
    mock.get("https://api.test/x", status=503)
    mock.get("https://api.test/x", status=200)
    with caplog.at_level(logging.DEBUG, logger="resilient_session"):
        ResilientSession(retry=FAST).get("https://api.test/x?token=SECRET-TOKEN-2")
    attempts = [r for r in ours(caplog, logging.DEBUG) if r.getMessage().startswith("attempt")]
    assert [(r.attempt, r.status, r.outcome) for r in attempts] == [  # type: ignore[attr-defined]
        (1, 502, "retry"),
        (2, 503, "retry"),
        (3, 200, "ok"),
    ]
    assert len({r.request_id for r in attempts}) == 1  # type: ignore[attr-defined]
    assert all(r.url == "https://api.test/x?token=***" for r in attempts)  # type: ignore[attr-defined]
    assert "SECRET-TOKEN-2" not in caplog.text


def test_a_failed_call_logs_its_error_type(closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="resilient_session"), pytest.raises(APIConnectionError):
        ResilientSession(retry=False).get(f"http://127.0.0.1:{closed_port}/x")
    (line,) = call_lines(caplog)
    assert (line.outcome, line.error_type, line.status, line.attempt) == (  # type: ignore[attr-defined]
        "error",
        "APIConnectionError",
        None,
        1,
    )
    assert "failed: APIConnectionError" in line.getMessage()


def test_an_error_status_is_an_http_error_outcome(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mock.get("https://api.test/missing", status=404)
    with caplog.at_level(logging.INFO, logger="resilient_session"):
        ResilientSession().get("https://api.test/missing")
    (line,) = call_lines(caplog)
    assert (line.status, line.outcome) == (404, "http_error")  # type: ignore[attr-defined]


def test_every_record_of_the_package_carries_the_fields(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    # The retry policy's own line has no request id of its own: the filter adds the call's.
    mock.get("https://api.test/x", status=503)
    mock.get("https://api.test/x", status=200)
    with caplog.at_level(logging.INFO, logger="resilient_session"):
        ResilientSession(retry=FAST, integration="x-api").get("https://api.test/x")
    (retrying,) = [r for r in ours(caplog, logging.WARNING) if r.getMessage().startswith("retrying")]
    assert retrying.request_id == mock.calls[0].request.headers["X-Request-ID"]  # type: ignore[attr-defined]
    assert retrying.integration == "x-api"  # type: ignore[attr-defined]
    assert all(hasattr(retrying, name) for name in FIELDS)


def test_breaker_state_is_logged(mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    mock.get("https://api.test/x", status=200)
    with caplog.at_level(logging.INFO, logger="resilient_session"):
        ResilientSession(breaker=CircuitBreaker()).get("https://api.test/x")
    (line,) = call_lines(caplog)
    assert line.breaker_state == "closed"  # type: ignore[attr-defined]


def test_nothing_is_observed_when_nobody_listens() -> None:
    session = ResilientSession()
    request = requests.Request("GET", "https://api.test/x").prepare()
    call = CallState.begin("GET", request.url)
    assert not logging.getLogger("resilient_session").isEnabledFor(logging.INFO)
    assert begin_call(session, call, request) is None
    assert request.headers["X-Request-ID"]  # the id is still sent
    session.events.on_response(lambda event: None)
    assert begin_call(session, CallState.begin("GET", request.url), request) is not None


# -- events -------------------------------------------------------------------------------------------


def record(session: ResilientSession) -> list[CallEvent]:
    seen: list[CallEvent] = []
    events = session.events
    for register in (events.on_request, events.on_retry, events.on_response, events.on_error):
        register(seen.append)
    return seen


def test_events_come_in_order_request_retries_response(mock: responses.RequestsMock) -> None:
    mock.get("https://api.test/x", status=503)
    mock.get("https://api.test/x", status=429, headers={"Retry-After": "0"})
    mock.get("https://api.test/x", status=200)
    session = ResilientSession(retry=FAST, integration="x")
    seen = record(session)
    response = session.get("https://api.test/x")
    assert [e.kind for e in seen] == ["request", "retry", "retry", "response"]
    request, first, second, done = seen
    assert (first.attempt, first.status, first.reason) == (1, 503, "status 503")
    assert (second.attempt, second.status, second.reason) == (2, 429, "status 429")
    assert (done.status, done.attempt, done.outcome, done.response) == (200, 3, "ok", response)
    assert {e.request_id for e in seen} == {mock.calls[0].request.headers["X-Request-ID"]}
    assert {e.integration for e in seen} == {"x"}
    assert done.elapsed >= request.elapsed


def test_an_error_ends_with_on_error(closed_port: int) -> None:
    session = ResilientSession(retry=RetryPolicy(1, backoff_factor=0))
    seen = record(session)
    with pytest.raises(APIConnectionError) as info:
        session.get(f"http://127.0.0.1:{closed_port}/x")
    assert [e.kind for e in seen] == ["request", "retry", "error"]
    assert seen[-1].error is info.value
    assert seen[-1].outcome == "error"


def test_a_failing_callback_is_logged_and_the_call_goes_on(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mock.get("https://api.test/x", status=200)
    session = ResilientSession()
    after: list[CallEvent] = []

    @session.events.on_response
    def broken(event: CallEvent) -> None:
        raise RuntimeError("metrics backend down")

    session.events.on_response(after.append)
    with caplog.at_level(logging.ERROR, logger="resilient_session"):
        assert session.get("https://api.test/x").status_code == 200
    assert len(after) == 1  # later callbacks still ran
    (line,) = ours(caplog, logging.ERROR)
    assert "callback" in line.getMessage() and "metrics backend down" in caplog.text


def test_remove_unregisters_a_callback(mock: responses.RequestsMock) -> None:
    mock.get("https://api.test/x", status=200)
    session = ResilientSession()
    seen: list[CallEvent] = []
    session.events.on_request(seen.append)
    session.events.on_response(seen.append)
    session.events.remove(seen.append)
    session.get("https://api.test/x")
    assert seen == [] and not session.events


def test_registering_something_not_callable_fails() -> None:
    with pytest.raises(TypeError):
        Events().on_retry("not a function")  # type: ignore[type-var]


def test_copies_and_pickles_start_without_callbacks() -> None:
    session = ResilientSession()
    session.events.on_error(print)
    for clone in (pickle.loads(pickle.dumps(session)), copy.deepcopy(session)):
        assert isinstance(clone.events, Events) and not clone.events
    assert session.events


def test_budget_exhaustion_is_an_event(mock: responses.RequestsMock) -> None:
    mock.get("https://api.test/x", status=503)
    session = ResilientSession(retry=FAST, budget=RetryBudget(capacity=5, retry_cost=5), integration="x")
    exhausted: list[BudgetExhausted] = []
    session.events.on_budget_exhausted(exhausted.append)
    retries = record(session)
    assert session.get("https://api.test/x").status_code == 503
    assert [e.kind for e in retries] == ["request", "retry", "response"]  # one retry paid, then none
    (event,) = exhausted
    assert (event.host, event.integration, event.reason) == ("https://api.test:443", "x", "status 503")


def test_breaker_transitions_are_events(mock: responses.RequestsMock) -> None:
    mock.get("https://api.test/x", status=503)
    breaker = CircuitBreaker(consecutive_failures=2, failure_rate_threshold=None)
    session = ResilientSession(retry=False, breaker=breaker)
    changes: list[StateChange] = []
    session.events.on_breaker_state_change(changes.append)
    seen = record(session)
    session.get("https://api.test/x")
    session.get("https://api.test/x")
    with pytest.raises(CircuitOpenError):
        session.get("https://api.test/x")
    assert [(c.old.value, c.new.value) for c in changes] == [("closed", "open")]
    assert seen[-1].kind == "error" and seen[-1].breaker_state == "open"


# -- request ids --------------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_request_id_is_the_same_on_every_retry(upstream: Upstream) -> None:
    url = upstream.script("/flaky", Reply(503), Reply(502), Reply(200))
    ResilientSession(retry=FAST).get(url)
    sent = [call.headers.get("X-Request-ID") for call in upstream.calls["/flaky"]]
    assert len(sent) == 3 and sent[0] and len(set(sent)) == 1


@pytest.mark.integration
def test_a_redirect_hops_debug_line_names_the_url_it_sent(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    target = upstream.script("/new", Reply(200))
    url = upstream.script("/old", Reply(303, headers={"Location": target + "?api_key=HOP-SECRET-3"}))
    with caplog.at_level(logging.DEBUG, logger="resilient_session"):
        ResilientSession().post(url, data=b"x")
    attempts = [r for r in ours(caplog, logging.DEBUG) if r.getMessage().startswith("attempt")]
    assert [(r.method, r.url) for r in attempts] == [  # type: ignore[attr-defined]
        ("POST", url),
        ("GET", target + "?api_key=***"),
    ]
    (line,) = [r for r in ours(caplog, logging.INFO) if r.levelno == logging.INFO]
    assert line.url == url  # type: ignore[attr-defined]  # the call's one INFO line keeps the call's URL
    assert "HOP-SECRET-3" not in caplog.text


@pytest.mark.integration
def test_the_request_id_is_the_same_on_every_redirect_hop(upstream: Upstream) -> None:
    target = upstream.script("/new", Reply(200))
    url = upstream.script("/old", Reply(302, headers={"Location": target}))
    response = ResilientSession().get(url)
    ids = {upstream.calls[path][0].headers.get("X-Request-ID") for path in ("/old", "/new")}
    assert response.status_code == 200 and len(ids) == 1 and None not in ids


@pytest.mark.integration
def test_each_call_gets_its_own_request_id(upstream: Upstream) -> None:
    url = upstream.script("/x", Reply(200))
    session = ResilientSession()
    session.get(url)
    session.get(url)
    ids = [call.headers["X-Request-ID"] for call in upstream.calls["/x"]]
    assert len(set(ids)) == 2 and all(len(i) == 32 for i in ids)


def test_an_incoming_request_id_is_respected(mock: responses.RequestsMock) -> None:
    mock.get("https://api.test/x", status=200)
    ResilientSession().get("https://api.test/x", headers={"x-request-id": "from-the-caller"})
    assert mock.calls[0].request.headers["X-Request-ID"] == "from-the-caller"


def test_a_bound_request_id_is_sent(mock: responses.RequestsMock) -> None:
    mock.get("https://api.test/x", status=200)
    seen: list[str | None] = []
    session = ResilientSession()
    session.events.on_response(lambda event: seen.append(current_request_id()))
    with bind_request_id("incoming-42"):
        session.get("https://api.test/x")
    assert mock.calls[0].request.headers["X-Request-ID"] == "incoming-42"
    assert seen == ["incoming-42"]


def test_the_header_name_is_configurable_and_can_be_turned_off(mock: responses.RequestsMock) -> None:
    mock.get("https://api.test/x", status=200)
    ResilientSession(request_id_header="X-Correlation-ID").get("https://api.test/x")
    ResilientSession(request_id_header=None).get("https://api.test/x")
    first, second = (call.request.headers for call in mock.calls)
    assert "X-Correlation-ID" in first and "X-Request-ID" not in first
    assert "X-Request-ID" not in second and "X-Correlation-ID" not in second


def test_names_that_left_observe_events_still_import_from_it_with_a_warning() -> None:
    import importlib
    import warnings

    from resilient_session.observe import events

    assert events._MOVED
    for name, module in events._MOVED.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getattr(events, name)
        home = importlib.import_module(f"resilient_session.observe.{module}")
        assert value is getattr(home, "ensure_request_id" if name == "_ensure_request_id" else name), name
        assert [w.category for w in caught] == [DeprecationWarning], name
        assert f"resilient_session.observe.{module}" in str(caught[0].message)
    with pytest.raises(AttributeError):
        events.no_such_name  # noqa: B018
