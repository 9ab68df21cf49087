"""Hostile numbers from a real server on 127.0.0.1: ``Retry-After`` values no wait can honour."""

from __future__ import annotations

import math
import time

import pytest

from resilient_session import RateLimitedError, ResilientSession, RetryPolicy

from .upstream import Reply, Upstream

HOSTILE = ["1e999", "9" * 400, "1e308", "nan", "inf", "-1e999", "Fri, 31 Dec 9999 23:59:59 GMT", "x" * 5000]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_retry_after_is_waited_at_most_backoff_max(upstream: Upstream, value: str) -> None:
    url = upstream.script("/limited", Reply(429, b"{}", {"Retry-After": value}), Reply(200))
    started = time.monotonic()
    with ResilientSession(retry=RetryPolicy(total=2, backoff_factor=0.01, backoff_max=0.2)) as session:
        response = session.get(url)
    assert response.status_code == 200
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("value", HOSTILE)
def test_rate_limited_error_retry_after_is_finite_and_at_most_a_day(upstream: Upstream, value: str) -> None:
    url = upstream.script("/limited", Reply(429, b"{}", {"Retry-After": value}))
    with (
        ResilientSession(retry=False, raise_for_status=True) as session,
        pytest.raises(RateLimitedError) as e,
    ):
        session.get(url)
    retry_after = e.value.retry_after
    assert retry_after is None or (math.isfinite(retry_after) and 0 <= retry_after <= 86400)
