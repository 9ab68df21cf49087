"""resilient_session._numbers: every external number is finite and within its documented range."""

from __future__ import annotations

import email.utils
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_session._numbers import MAX_RETRY_AFTER, clamp, parse_retry_after
from resilient_session.errors import parse_retry_after as errors_parse_retry_after

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("1e999", MAX_RETRY_AFTER),
        ("9" * 400, MAX_RETRY_AFTER),
        ("-1e999", 0.0),
        ("nan", None),
        ("inf", None),
        ("Infinity", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, clock=lambda: NOW) == expected


def test_an_http_date_gives_the_seconds_until_it() -> None:
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(date, clock=lambda: NOW) == pytest.approx(30)


def test_errors_parse_retry_after_is_the_clamped_one() -> None:
    assert errors_parse_retry_after("1e999") == MAX_RETRY_AFTER
    assert errors_parse_retry_after("nan") is None


@given(st.text(max_size=500))
def test_retry_after_is_always_none_or_in_range(value: str) -> None:
    result = parse_retry_after(value)
    assert result is None or (math.isfinite(result) and 0.0 <= result <= MAX_RETRY_AFTER)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), 7.0),
        (float("inf"), 10.0),
        (-float("inf"), 1.0),
        ("abc", 7.0),
        (None, 7.0),
        (True, 7.0),
        ("1e400", 10.0),
        (5, 5.0),
        (b"3", 3.0),
    ],
)
def test_clamp(value: object, expected: float) -> None:
    assert clamp(value, 1.0, 10.0, 7.0) == expected
