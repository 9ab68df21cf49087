"""The quota read from response headers: every format, malformed and hostile values clamped or ignored."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from resilient_session._numbers import MAX_WAIT
from resilient_session.policies.quota_headers import MAX_LIMIT, Quota, parse_quota

WALL = 1_700_000_000.0


def parse(headers: dict[str, str], status: int = 200) -> Quota | None:
    return parse_quota(CaseInsensitiveDict(headers), status, wall=lambda: WALL)


# -- failure cases first: what must be ignored or clamped -------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"RateLimit-Policy": ""},
        {"RateLimit-Policy": '"d";q=nan;w=1'},
        {"RateLimit-Policy": '"d";q=inf;w=1'},
        {"RateLimit-Policy": '"d";q=-5;w=1'},
        {"RateLimit-Policy": '"d";q=0;w=1'},
        {"RateLimit-Policy": '"d";w=60'},
        {"RateLimit-Policy": '"unterminated;q=5'},
        {"RateLimit": '"d";r=abc;t=3'},
        {"X-RateLimit-Limit": "many"},
        {"X-RateLimit-Limit": "NaN", "X-RateLimit-Remaining": "-Infinity"},
        {"X-RateLimit-Remaining": "-3"},
        {"Retry-After": "5"},  # on a 200, Retry-After says nothing about a quota
    ],
)
def test_headers_without_a_usable_quota_give_none(headers: dict[str, str]) -> None:
    assert parse(headers) is None


def test_huge_values_are_brought_into_range() -> None:
    quota = parse({"RateLimit-Policy": '"d";q=1e400;w=99999999999', "RateLimit": '"d";r=1e999;t=1e999'})
    assert quota is not None
    assert quota.limit == MAX_LIMIT
    assert quota.window == MAX_WAIT
    assert quota.remaining == MAX_LIMIT
    assert quota.reset == MAX_WAIT
    legacy = parse({"X-RateLimit-Limit": "9" * 400, "X-RateLimit-Reset": "9" * 400})
    assert legacy is not None
    assert legacy.limit == MAX_LIMIT
    assert legacy.reset == MAX_WAIT


def test_a_reset_in_the_past_is_zero_and_a_negative_delta_is_ignored() -> None:
    past = parse(
        {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(WALL - 50)}
    )
    assert past is not None and past.reset == 0.0
    negative = parse({"X-RateLimit-Limit": "10", "X-RateLimit-Reset": "-5"})
    assert negative is not None and negative.reset is None


def test_remaining_above_the_limit_is_not_believed() -> None:
    quota = parse({"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "5000"})
    assert quota is not None and quota.remaining == 10


def test_an_oversized_field_is_ignored_whole() -> None:
    assert parse({"RateLimit-Policy": '"d";q=10;w=1, ' * 1000}) is None


@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=50))
def test_no_header_value_makes_the_parser_raise_or_return_a_non_finite_number(
    policy: str, state: str, reset: str
) -> None:
    for headers in (
        {"RateLimit-Policy": policy, "RateLimit": state},
        {"X-RateLimit-Limit": policy[:20], "X-RateLimit-Remaining": state[:20], "X-RateLimit-Reset": reset},
        {"Retry-After": reset},
    ):
        quota = parse(headers, status=429)
        if quota is None:
            continue
        for value in (quota.limit, quota.window, quota.remaining, quota.reset, quota.retry_after):
            assert value is None or (math.isfinite(value) and value >= 0)
        assert quota.limit is None or quota.limit >= 1


# -- the formats ----------------------------------------------------------------------------------


def test_ietf_policy_and_state() -> None:
    quota = parse({"RateLimit-Policy": '"default";q=100;w=60', "RateLimit": '"default";r=42;t=17'})
    assert quota == Quota(limit=100, window=60, remaining=42, reset=17, source="ietf")
    assert quota.rate == pytest.approx(100 / 60)
    assert not quota.exhausted


def test_ietf_several_policies_the_tightest_rate_and_the_most_exhausted_state_win() -> None:
    quota = parse(
        {
            "RateLimit-Policy": '"day";q=1000;w=86400, "burst";q=100;w=60',
            "RateLimit": '"burst";r=40;t=20, "day";r=0;t=3600',
        }
    )
    assert quota is not None
    assert (quota.limit, quota.window) == (1000, 86400)  # 0.0116/s is tighter than 1.67/s
    assert (quota.remaining, quota.reset) == (0, 3600)
    assert quota.exhausted


def test_ietf_tokens_and_partition_key() -> None:
    quota = parse(
        {"RateLimit-Policy": "peruser;q=10;w=1;pk=:cHsxMjM=:", "RateLimit": "peruser;r=3;t=1;pk=:cHsxMjM=:"}
    )
    assert quota is not None
    assert (quota.limit, quota.remaining, quota.partition) == (10, 3, True)


def test_ietf_policy_without_a_window_gives_no_rate() -> None:
    quota = parse({"RateLimit-Policy": '"d";q=10'})
    assert quota is not None and quota.limit == 10 and quota.window is None and quota.rate is None


def test_older_ietf_drafts_fields_are_read_with_a_delta_reset() -> None:
    quota = parse({"RateLimit-Limit": "50", "RateLimit-Remaining": "7", "RateLimit-Reset": "12"})
    assert quota == Quota(limit=50, remaining=7, reset=12, source="x-ratelimit")


@pytest.mark.parametrize(
    ("reset", "seconds"),
    [
        (str(int(WALL) + 30), 30.0),  # epoch seconds (GitHub)
        (str(int(WALL * 1000) + 2500), 2.5),  # epoch milliseconds
        ("45", 45.0),  # delta seconds
        ("0.25", 0.25),
        ("6m0s", 360.0),  # OpenAI durations
        ("250ms", 0.25),
        ("1h2m3s", 3723.0),
    ],
)
def test_x_ratelimit_reset_in_every_form(reset: str, seconds: float) -> None:
    quota = parse({"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999", "x-ratelimit-reset": reset})
    assert quota is not None
    assert quota.reset == pytest.approx(seconds)
    assert (quota.limit, quota.remaining, quota.window, quota.source) == (5000, 4999, None, "x-ratelimit")


def test_openai_and_discord_names() -> None:
    openai = parse(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1s",
        }
    )
    assert openai == Quota(limit=60, remaining=0, reset=1.0, source="x-ratelimit")
    discord = parse(
        {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "1", "X-RateLimit-Reset-After": "1.5"}
    )
    assert discord is not None and discord.reset == 1.5


def test_the_ietf_fields_win_over_x_ratelimit() -> None:
    quota = parse({"RateLimit-Policy": '"d";q=10;w=1', "X-RateLimit-Limit": "99"})
    assert quota is not None and quota.limit == 10 and quota.source == "ietf"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_on_429_and_503(status: int) -> None:
    alone = parse({"Retry-After": "3"}, status)
    assert alone == Quota(retry_after=3.0, source="retry-after")
    with_quota = parse({"Retry-After": "2", "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0"}, status)
    assert with_quota is not None and with_quota.retry_after == 2.0 and with_quota.limit == 10


def test_retry_after_as_an_http_date() -> None:
    quota = parse({"Retry-After": "Tue, 14 Nov 2023 22:13:40 GMT"}, 429)
    assert quota is not None and quota.retry_after == pytest.approx(20.0)
