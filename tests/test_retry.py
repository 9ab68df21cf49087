"""RetryPolicy: the decisions, without a network (``responses`` for the request-level cases)."""

from __future__ import annotations

import random

import pytest
import requests
import responses
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

from resilient_session import ResilientSession, RetryPolicy, _decide
from resilient_session._call import CallState
from resilient_session.retry import DEFAULT_STATUS_FORCELIST, as_retry_policy


def _response(status: int, **headers: str) -> HTTPResponse:
    return HTTPResponse(body=b"", status=status, headers=headers, preload_content=False)


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.total == 3
    assert policy.backoff_max == 30
    assert policy.status_forcelist == DEFAULT_STATUS_FORCELIST == {429, 502, 503, 504}
    # mypy takes the frozenset == set comparison above to be always false.
    assert policy.raise_on_status is False  # type: ignore[unreachable]
    assert policy.respect_retry_after_header is True
    assert "POST" not in policy.allowed_methods
    assert {"GET", "PUT", "DELETE", "HEAD", "OPTIONS"} <= set(policy.allowed_methods)


def test_new_keeps_subclass_and_every_option() -> None:
    policy = RetryPolicy(
        5, backoff_factor=0.2, backoff_max=7, full_jitter=False, idempotency_key_header="X-Key"
    )
    copy = policy.new(total=1)
    assert type(copy) is RetryPolicy
    assert copy.total == 1
    assert (copy.backoff_factor, copy.backoff_max, copy.full_jitter) == (0.2, 7, False)
    assert copy.idempotency_key_header == "X-Key"
    assert copy.idempotency_key_methods == {"POST", "PATCH"}
    assert policy.total == 5  # the original is untouched


def test_subclass_of_subclass_survives_increment() -> None:
    class Mine(RetryPolicy):
        pass

    policy = Mine().increment("GET", "/x", response=_response(503))
    assert type(policy) is Mine
    assert policy.total == 2


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    random.seed(7)
    policy = RetryPolicy(10, backoff_factor=0.5, backoff_max=3)
    waits: dict[int, list[float]] = {}
    for _ in range(200):
        current = policy
        for n in range(1, 6):
            current = current.increment("GET", "/x", response=_response(503))
            waits.setdefault(n, []).append(current.get_backoff_time())
    for n, values in waits.items():
        ceiling = min(3, 0.5 * 2 ** (n - 1))
        assert all(0 <= v <= ceiling for v in values)
        assert max(values) > ceiling * 0.8  # the whole interval is used
        assert min(values) < ceiling * 0.2


def test_without_jitter_the_ceiling_is_the_wait() -> None:
    policy = RetryPolicy(5, backoff_factor=0.5, full_jitter=False)
    waits = []
    for _ in range(4):
        policy = policy.increment("GET", "/x", response=_response(503))
        waits.append(policy.get_backoff_time())
    assert waits == [0.5, 1.0, 2.0, 4.0]


def test_no_history_means_no_wait() -> None:
    assert RetryPolicy().get_backoff_time() == 0


@pytest.mark.parametrize(("header", "expected"), [("2", 2.0), ("120", 30.0), ("0", 0.0), ("soon", None)])
def test_retry_after_is_honoured_up_to_the_cap(header: str, expected: float | None) -> None:
    assert RetryPolicy().get_retry_after(_response(429, **{"Retry-After": header})) == expected


def test_retry_after_http_date() -> None:
    wait = RetryPolicy().get_retry_after(_response(503, **{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert wait == 0.0  # a date in the past means "now"


@responses.activate
def test_retry_after_beyond_the_remaining_deadline_answers_with_the_last_response() -> None:
    responses.get("https://api.test/x", status=429, headers={"Retry-After": "5"})
    responses.get("https://api.test/x", json={"ok": True})
    response = ResilientSession(deadline=1.0).get("https://api.test/x")
    assert response.status_code == 429
    assert len(responses.calls) == 1


@responses.activate
def test_retry_after_within_the_deadline_is_planned_and_counted() -> None:
    responses.get("https://api.test/x", status=429, headers={"Retry-After": "2"})
    responses.get("https://api.test/x", json={"ok": True})
    decision = _decide.after_status(RetryPolicy(), "GET", "/x", _response(429, **{"Retry-After": "2"}))
    assert isinstance(decision, _decide.Retrying) and decision.wait == 2.0
    response = ResilientSession(deadline=10.0).get("https://api.test/x")
    assert response.status_code == 200
    assert response.attempts == 2  # type: ignore[attr-defined]
    assert len(responses.calls) == 2


def test_sleep_never_passes_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from resilient_session import _attempts

    slept: list[float] = []
    monkeypatch.setattr("resilient_session._attempts.time.sleep", slept.append)
    call = CallState.begin("GET", "http://h/x")
    call.tighten_deadline(0.5)
    _attempts._wait(20.0, call, mocked=False)
    assert len(slept) == 1
    assert 0.4 < slept[0] <= 0.5


def test_a_retry_gate_can_veto() -> None:
    from resilient_session import _attempts

    call = CallState.begin("GET", "http://h/x")
    reasons: list[str] = []
    call.retry_gates.append(lambda _call, reason: reasons.append(reason) or False)  # type: ignore[func-returns-value]
    decision = _decide.after_status(RetryPolicy(), "GET", "/x", _response(503))
    assert isinstance(decision, _decide.Retrying)
    assert not _attempts.may_go(decision, call, 503)
    assert reasons == ["status 503"]
    assert call.attempts == 1


@pytest.mark.parametrize(
    ("value", "total"),
    [(None, 3), (5, 5), (0, 0), (False, 0)],
)
def test_as_retry_policy(value: int | bool | None, total: int) -> None:
    policy = as_retry_policy(value)
    assert isinstance(policy, RetryPolicy)
    assert policy.total == total


def test_as_retry_policy_keeps_a_plain_urllib3_retry() -> None:
    retry = Retry(total=2)
    assert as_retry_policy(retry) is retry


@responses.activate
def test_status_retries_work_under_responses() -> None:
    responses.get("https://api.test/x", status=503)
    responses.get("https://api.test/x", status=502)
    responses.get("https://api.test/x", json={"ok": True})
    response = ResilientSession().get("https://api.test/x")
    assert response.status_code == 200
    assert len(responses.calls) == 3


@responses.activate
def test_raise_on_status_gives_retry_exhausted_error() -> None:
    from resilient_session import RetryExhaustedError

    responses.get("https://api.test/x", status=503)
    session = ResilientSession(retry=RetryPolicy(2, raise_on_status=True))
    with pytest.raises(RetryExhaustedError) as info:
        session.get("https://api.test/x")
    assert isinstance(info.value, requests.exceptions.RetryError)
    assert len(responses.calls) == 3


@responses.activate
def test_500_is_not_retried_by_default() -> None:
    responses.get("https://api.test/x", status=500)
    assert ResilientSession().get("https://api.test/x").status_code == 500
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    "options",
    [{"redirect": 5}, {"raise_on_redirect": False}, {"remove_headers_on_redirect": ["X-Other"]}],
)
def test_redirect_options_are_refused_with_a_clear_error(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="requests follows redirects itself"):
        RetryPolicy(3, **options)  # type: ignore[arg-type]


def test_total_false_and_copies_are_not_refused() -> None:
    policy = RetryPolicy(False)
    assert policy.new(total=2).total == 2
    assert RetryPolicy(3).new().total == 3


def test_backoff_jitter_is_added_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib3.util.retry import RequestHistory

    monkeypatch.setattr("random.uniform", lambda a, b: b)
    monkeypatch.setattr("random.random", lambda: 1.0)
    policy = RetryPolicy(5, backoff_factor=1.0, backoff_jitter=0.25, backoff_max=30)
    once = policy.new(history=(RequestHistory("GET", "/", None, 503, None),))
    assert once.get_backoff_time() == 1.25
    capped = RetryPolicy(5, backoff_factor=1.0, backoff_jitter=5, backoff_max=2).new(
        history=(RequestHistory("GET", "/", None, 503, None),) * 3
    )
    assert capped.get_backoff_time() == 2


@responses.activate
def test_a_foreign_retry_is_read_as_data_and_keeps_its_class_and_options() -> None:
    from requests.adapters import HTTPAdapter

    class Mine(Retry):
        pass

    theirs = Mine(total=2, status_forcelist=[503], backoff_factor=0)
    responses.get("https://api.test/x", status=503)
    responses.get("https://api.test/x", status=503)
    responses.get("https://api.test/x", json={"ok": True})
    session = ResilientSession()
    session.mount("https://", HTTPAdapter(max_retries=theirs))
    response = session.get("https://api.test/x")
    assert response.status_code == 200
    assert len(responses.calls) == 3
    assert response.attempts == 3  # type: ignore[attr-defined]
    # Its own policy decided, and the object is left as it was: no copy, no other class.
    assert session.get_adapter("https://api.test/x").max_retries is theirs  # type: ignore[attr-defined]
    assert type(theirs) is Mine and (theirs.total, theirs.history) == (2, ())


@responses.activate
def test_under_responses_one_loop_retries_and_the_mock_sends_once_per_attempt() -> None:
    # responses applies the Retry it is handed: the session hands it the single-attempt one, so the
    # retries are the session's alone (a second loop inside the mock would make up to 9 calls here).
    responses.get("https://api.test/x", status=503)
    response = ResilientSession(retry=RetryPolicy(2, backoff_factor=0)).get("https://api.test/x")
    assert response.status_code == 503
    assert len(responses.calls) == 3
    assert response.attempts == 3  # type: ignore[attr-defined]
