"""_decide: the retry decisions, pure functions of a urllib3 ``Retry`` and an outcome (no I/O, no sleep)."""

from __future__ import annotations

import pytest
import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

from resilient_session import RetryPolicy, _decide


def _response(status: int, **headers: str) -> HTTPResponse:
    return HTTPResponse(body=b"", status=status, headers=headers, preload_content=False)


def test_retry_after_beyond_the_remaining_deadline_stops_retrying() -> None:
    decision = _decide.after_status(RetryPolicy(), "GET", "/x", _response(429, **{"Retry-After": "5"}))
    assert isinstance(decision, _decide.Retrying)
    assert decision.wait == 5.0
    assert not _decide.allowed_by_deadline(decision.wait, remaining=1.0, expired=False)
    assert _decide.allowed_by_deadline(decision.wait, remaining=10.0, expired=False)
    assert not _decide.allowed_by_deadline(0.0, remaining=10.0, expired=True)


def test_a_refused_connection_is_not_reported_as_a_connect_timeout() -> None:
    # urllib3's NewConnectionError subclasses ConnectTimeoutError.
    refused = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    assert _decide.after_error(RetryPolicy(), "GET", "/x", refused).reason == "NewConnectionError"
    timed_out = ConnectTimeoutError("timed out")
    assert _decide.after_error(RetryPolicy(), "GET", "/x", timed_out).reason == "connect timeout"


def test_post_is_retryable_only_with_an_idempotency_key() -> None:
    policy = RetryPolicy()
    assert not policy.is_retry("POST", 503)
    assert _decide.with_idempotency_key(policy, {"Accept": "*/*"}) is policy
    headers = requests.structures.CaseInsensitiveDict({"idempotency-key": "k"})
    keyed = _decide.with_idempotency_key(policy, headers)
    assert keyed.is_retry("POST", 503)
    assert keyed.is_retry("PATCH", 503)
    assert not keyed.is_retry("POST", 500)
    assert not keyed.is_retry("CONNECT", 503)
    assert type(keyed) is RetryPolicy and keyed.total == policy.total


@pytest.mark.parametrize("status", [200, 204, 301, 404, 413, 429, 500, 502, 503, 504])
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("retry_after", [None, "1"])
@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(),
        Retry(3),
        Retry(3, status_forcelist=[500]),
        RetryPolicy(0),
        Retry(2, allowed_methods=None),
    ],
    ids=["policy", "retry", "forcelist", "exhausted", "any method"],
)
def test_the_status_decision_is_urllib3s_own(
    policy: Retry, method: str, status: int, retry_after: str | None
) -> None:
    # after_status skips reading the headers for a status urllib3's is_retry cannot retry: same answer.
    headers = {"Retry-After": retry_after} if retry_after else {}
    answer = _response(status, **headers)
    decision = _decide.after_status(policy, method, "/x", answer)
    assert (decision is not None) == policy.is_retry(method, status, retry_after is not None)
