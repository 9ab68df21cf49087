"""RetryPolicy: the decisions, without a network (``responses`` for the request-level cases)."""

from __future__ import annotations

import random

import pytest
import requests
import responses
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

from resilient_session import ResilientSession, RetryPolicy
from resilient_session._call import CallState, active
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


def test_retry_after_beyond_the_remaining_deadline_stops_retrying() -> None:
    call = CallState.begin("GET", "http://h/x")
    call.tighten_deadline(1.0)
    with active(call), pytest.raises(MaxRetryError):
        RetryPolicy().increment("GET", "/x", response=_response(429, **{"Retry-After": "5"}))


def test_retry_after_within_the_deadline_is_planned() -> None:
    call = CallState.begin("GET", "http://h/x")
    call.tighten_deadline(10.0)
    with active(call):
        new = RetryPolicy().increment("GET", "/x", response=_response(429, **{"Retry-After": "2"}))
    assert new._planned_sleep == 2.0
    assert call.attempts == 2
    assert call.last_status == 429


def test_sleep_never_passes_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("resilient_session.retry.time.sleep", slept.append)
    policy = RetryPolicy().increment("GET", "/x", response=_response(503, **{"Retry-After": "20"}))
    call = CallState.begin("GET", "http://h/x")
    call.tighten_deadline(0.5)
    with active(call):
        policy.sleep()
    assert len(slept) == 1
    assert 0.4 < slept[0] <= 0.5


def test_a_retry_gate_can_veto() -> None:
    call = CallState.begin("GET", "http://h/x")
    reasons: list[str] = []
    call.retry_gates.append(lambda _call, reason: reasons.append(reason) or False)  # type: ignore[func-returns-value]
    with active(call), pytest.raises(MaxRetryError):
        RetryPolicy().increment("GET", "/x", response=_response(503))
    assert reasons == ["status 503"]


def test_a_refused_connection_is_not_reported_as_a_connect_timeout() -> None:
    # urllib3's NewConnectionError subclasses ConnectTimeoutError.
    call = CallState.begin("GET", "http://h/x")
    reasons: list[str] = []
    call.retry_gates.append(lambda _call, reason: reasons.append(reason) or True)  # type: ignore[func-returns-value]
    refused = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    with active(call):
        RetryPolicy().increment("GET", "/x", error=refused)
        RetryPolicy().increment("GET", "/x", error=ConnectTimeoutError("timed out"))
    assert reasons == ["NewConnectionError", "connect timeout"]


def test_post_is_retryable_only_with_an_idempotency_key() -> None:
    policy = RetryPolicy()
    assert not policy.is_retry("POST", 503)
    call = CallState.begin("POST", "http://h/x", idempotency_key=True)
    with active(call):
        assert policy.is_retry("POST", 503)
        assert policy.is_retry("PATCH", 503)
        assert not policy.is_retry("POST", 500)


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


def test_a_foreign_retry_becomes_call_aware_and_keeps_its_class_and_options() -> None:
    from resilient_session.retry import CallAwareRetry, call_aware

    class Mine(Retry):
        pass

    theirs = Mine(total=2, status_forcelist=[503], backoff_factor=0.3)
    aware = call_aware(theirs)
    assert isinstance(aware, Mine) and isinstance(aware, CallAwareRetry)
    assert (aware.total, aware.status_forcelist, aware.backoff_factor) == (2, [503], 0.3)
    assert isinstance(aware.new(total=1), Mine)
    assert call_aware(aware) is aware
    assert not isinstance(theirs, CallAwareRetry)  # the user's object is left as it was
