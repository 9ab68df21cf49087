"""A wait that does not fit in the time left is not slept, against a real server on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from resilient_session import RateLimitedError, ResilientSession, RetryPolicy, ServerError

from .upstream import Reply, Upstream

SLACK = 0.05  # the promise: a wait that does not fit returns (or raises) within 50 ms


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:
        result = exc
    return result, time.monotonic() - started


# -- failure cases: the wait does not fit ----------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_past_the_deadline_returns_the_answer_at_once(upstream: Upstream, status: int) -> None:
    url = upstream.script("/limited", Reply(status, b'{"error": "slow down"}', {"Retry-After": "30"}))
    session = ResilientSession(deadline=2, breaker=False)
    response, elapsed = timed(lambda: session.get(url))
    assert isinstance(response, requests.Response) and response.status_code == status
    assert elapsed < SLACK, f"slept {elapsed:.3f}s for a wait that could not fit"
    assert upstream.count("/limited") == 1
    assert response.headers["Retry-After"] == "30"
    assert response.json() == {"error": "slow down"}  # the body is the caller's, read as usual


@pytest.mark.parametrize(("status", "error_class"), [(429, RateLimitedError), (503, ServerError)])
def test_with_raise_for_status_the_typed_error_carries_retry_after(
    upstream: Upstream, status: int, error_class: type[Exception]
) -> None:
    url = upstream.script("/limited", Reply(status, b"{}", {"Retry-After": "30"}))
    session = ResilientSession(deadline=2, raise_for_status=True, breaker=False)
    error, elapsed = timed(lambda: session.get(url))
    assert isinstance(error, error_class), error
    assert elapsed < SLACK
    assert upstream.count("/limited") == 1
    assert error.retry_after == 30.0  # type: ignore[attr-defined]
    assert error.attempts == 1  # type: ignore[attr-defined]


def test_a_backoff_past_the_deadline_is_not_slept(upstream: Upstream) -> None:
    url = upstream.script("/busy", Reply(503))
    policy = RetryPolicy(3, backoff_factor=5, full_jitter=False)  # 5 s before the first retry
    session = ResilientSession(deadline=2, retry=policy, breaker=False)
    response, elapsed = timed(lambda: session.get(url))
    assert isinstance(response, requests.Response) and response.status_code == 503
    assert elapsed < SLACK
    assert upstream.count("/busy") == 1


def test_a_per_call_deadline_decides_the_same_way(upstream: Upstream) -> None:
    url = upstream.script("/limited", Reply(429, b"{}", {"Retry-After": "30"}))
    session = ResilientSession(breaker=False)
    response, elapsed = timed(lambda: session.get(url, deadline=2))
    assert isinstance(response, requests.Response) and response.status_code == 429
    assert elapsed < SLACK and upstream.count("/limited") == 1


def test_the_time_already_spent_counts(upstream: Upstream) -> None:
    # 1.2 s of the 2 s go to the first answer; the 1 s Retry-After no longer fits in the 0.8 s left.
    url = upstream.script("/slow", Reply(429, b"{}", {"Retry-After": "1"}, delay=1.2))
    session = ResilientSession(deadline=2, breaker=False)
    response, elapsed = timed(lambda: session.get(url))
    assert isinstance(response, requests.Response) and response.status_code == 429
    assert 1.2 <= elapsed < 1.5
    assert upstream.count("/slow") == 1


def test_retries_run_out_the_error_still_says_retry_after(upstream: Upstream) -> None:
    url = upstream.script("/limited", Reply(429, b"{}", {"Retry-After": "0.05"}))
    session = ResilientSession(retry=RetryPolicy(1), raise_for_status=True, breaker=False)
    error, _ = timed(lambda: session.get(url))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 0.05 and error.attempts == 2
    assert upstream.count("/limited") == 2


# -- happy path: a wait that fits is slept -----------------------------------------------------------


def test_a_retry_after_that_fits_is_slept(upstream: Upstream) -> None:
    url = upstream.script("/limited", Reply(429, b"{}", {"Retry-After": "0.5"}), Reply(200))
    session = ResilientSession(deadline=2, breaker=False)
    response, elapsed = timed(lambda: session.get(url))
    assert isinstance(response, requests.Response) and response.status_code == 200
    assert 0.5 <= elapsed < 2
    calls = upstream.calls["/limited"]
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.5
