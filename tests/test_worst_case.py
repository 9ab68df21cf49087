"""The worst case of a call: computed from the settings in code, and stated in the docs with that figure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from urllib3.util import Retry, Timeout

from resilient_session import ResilientSession, RetryPolicy
from resilient_session._worst_case import worst_case
from resilient_session.adapter import DEFAULT_TIMEOUT

DOCS = Path(__file__).resolve().parent.parent / "docs"


def section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else None]


def default_case() -> float:
    """The default call's bound, from a default session's own settings (nothing restated here)."""
    session = ResilientSession()
    found = worst_case(session.timeout, session.retry, session.deadline)
    assert found.seconds is not None
    return found.seconds


# -- what is unbounded says so ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "retry"),
    [
        ((3.05, None), RetryPolicy()),
        ((None, 30), RetryPolicy()),
        (Timeout(connect=1, read=None), RetryPolicy()),
        (5, Retry(total=None, connect=None)),
    ],
)
def test_an_unlimited_timeout_or_retry_count_is_unbounded(timeout: object, retry: Retry) -> None:
    found = worst_case(timeout, retry)
    assert found.seconds is None and found.per_url is None
    assert found.describe().startswith("unbounded")
    assert worst_case(timeout, retry, 12).seconds == 12  # a deadline bounds it all the same


# -- the figure ------------------------------------------------------------------------------------------


def test_the_default_figure_is_made_of_the_defaults_in_code() -> None:
    policy = RetryPolicy()
    connect, read = DEFAULT_TIMEOUT
    retry_after = min(policy.backoff_max, policy.retry_after_max)
    assert policy.respect_retry_after_header and isinstance(policy.total, int)
    expected = (policy.total + 1) * (connect + read) + policy.total * retry_after
    assert ResilientSession().deadline is None
    assert default_case() == pytest.approx(expected)


def test_the_failure_guide_states_the_figure_the_code_computes() -> None:
    text = section(DOCS / "failure-guide.md", "## The worst case")
    policy = RetryPolicy()
    connect, read = DEFAULT_TIMEOUT
    wait = min(policy.backoff_max, policy.retry_after_max)
    assert isinstance(policy.total, int)
    times = "\N{MULTIPLICATION SIGN}"
    stated = re.search(
        rf"\*\*(\d+) {times} \(([\d.]+) \+ ([\d.]+)\) s \+ (\d+) {times} ([\d.]+) s = ([\d.]+) s\*\*", text
    )
    assert stated is not None, "the failure guide must state the default figure with its terms"
    attempts, doc_connect, doc_read, retries, doc_wait, figure = stated.groups()
    assert (int(attempts), float(doc_connect), float(doc_read)) == (policy.total + 1, connect, read)
    assert (int(retries), float(doc_wait)) == (policy.total, wait)
    assert float(figure) == pytest.approx(default_case(), abs=0.05)


def test_migrating_states_the_same_figure() -> None:
    text = section(DOCS / "migrating.md", "### No default deadline")
    figures = [float(f) for f in re.findall(r"\*\*([\d.]+) s\*\*", text)]
    assert figures == [pytest.approx(default_case(), abs=0.05)]


def test_each_wait_is_the_larger_of_the_backoff_ceiling_and_the_retry_after_cap() -> None:
    policy = RetryPolicy(5, backoff_factor=1, backoff_max=6, retry_after_max=3)
    found = worst_case((1, 2), policy)
    # backoff ceilings 1, 2, 4, 6, 6 against a Retry-After cap of min(6, 3) = 3
    assert list(found.waits) == [3, 3, 4, 6, 6]
    assert found.attempts == 6 and found.per_url == 6 * 3 + 22
    ignoring = worst_case((1, 2), policy.new(respect_retry_after_header=False))
    assert list(ignoring.waits) == [1, 2, 4, 6, 6]


def test_retries_off_is_one_attempt_and_no_wait() -> None:
    for retry in (RetryPolicy(0, read=False), Retry(False)):
        found = worst_case(5, retry)
        assert found.attempts == 1 and not found.waits and found.per_url == 10


def test_total_none_is_bounded_by_each_counter() -> None:
    found = worst_case(1, Retry(total=None, connect=1, read=1, status=2, other=0, backoff_factor=0))
    assert found.attempts == 5


def test_a_deadline_is_the_bound_and_the_line_says_what_it_would_be_without() -> None:
    found = worst_case((3.05, 20), RetryPolicy(4, backoff_max=10), 30)
    assert found.seconds == 30 and found.per_url == pytest.approx(5 * 23.05 + 4 * 10)
    assert found.describe() == (
        "30 s (the deadline; without it 155.25 s per URL = 5 attempts x (3.05 + 20) s"
        " + waits 10 + 10 + 10 + 10 s)"
    )


def test_a_bulkhead_wait_is_added_once_per_url() -> None:
    assert worst_case(1, RetryPolicy(0), bulkhead_wait=0.5).per_url == 2.5
