"""Option specs: one check for the constructor (Python values) and the integrations file (TOML values)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from resilient_session import CircuitBreaker, RetryBudget, RetryPolicy
from resilient_session._options import Option, check_options
from resilient_session.policies.bulkhead import Bulkhead


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        (Option("integer", minimum=1), 0, "must be >= 1, got 0"),
        (Option("integer"), 1.5, "expected an integer, got 1.5"),
        (Option("integer"), True, "expected an integer, got true"),
        (Option("number", exclusive=True), 0, "must be > 0, got 0"),
        (Option("number", maximum=1), 1.01, "must be <= 1, got 1.01"),
        (Option("number"), math.nan, "expected a number, got nan"),
        (Option("number"), math.inf, "expected a number, got inf"),
        (Option("boolean"), 1, "expected true or false, got 1"),
        (Option("string"), " ", "must not be empty"),
        (Option("header"), "X Y", '"X Y" is not a valid header name'),
        (Option("statuses"), "503", 'expected a collection of HTTP statuses, got "503"'),
        (Option("statuses"), (503, 99), "[1] expected an HTTP status (100-599), got 99"),
        (Option("methods"), ("GET", 1), "[1] expected a string, got 1"),
        (Option("integer"), None, "must be set (None is not accepted)"),
    ],
)
def test_each_kind_says_what_is_wrong(option: Option, value: Any, problem: str) -> None:
    assert option.problem(value) == problem


def test_a_count_takes_bools_from_python_not_from_a_file() -> None:
    count = Option("count", nullable=True)
    assert count.problem(False) is None and count.problem(None) is None and count.problem(3) is None
    assert count.file_problem(False) == "expected an integer, got false"


def test_false_stands_for_none_only_where_the_spec_says_so() -> None:
    off = Option("integer", minimum=1, nullable=True, false_is_none=True)
    assert off.file_problem(False) is None and off.from_file(False) is None
    assert Option("integer").file_problem(False) == "expected an integer, got false"


def test_a_file_writes_arrays_python_passes_any_collection() -> None:
    methods = Option("methods")
    assert methods.file_problem(("GET",)) == "expected an array of HTTP methods, got an array"
    assert methods.problem(frozenset({"GET"})) is None
    assert methods.from_file(["get", "Post"]) == frozenset({"GET", "POST"})


def test_a_wrong_type_is_a_type_error_a_bad_value_a_value_error() -> None:
    options = {"n": Option("integer", minimum=1)}
    with pytest.raises(TypeError, match=r"^n: expected an integer"):
        check_options(options, {"n": "3"})
    with pytest.raises(ValueError, match=r"^n: must be >= 1, got 0$"):
        check_options(options, {"n": 0})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RetryPolicy(backoff_factor=-1), "backoff_factor: must be >= 0, got -1"),
        (lambda: RetryPolicy(status_forcelist=[700]), r"status_forcelist: \[0\] expected an HTTP status"),
        (lambda: RetryPolicy().new(backoff_max=-1), "backoff_max: must be >= 0, got -1"),
        (lambda: CircuitBreaker(probes=0), "probes: must be >= 1, got 0"),
        (lambda: CircuitBreaker(failure_rate_threshold=0), "failure_rate_threshold: must be > 0, got 0"),
        (lambda: RetryBudget(capacity=-1), "capacity: must be > 0, got -1"),
        (lambda: Bulkhead(0), "max_concurrent: must be >= 1, got 0"),
    ],
)
def test_constructors_check_with_their_specs(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_retry_copies_may_carry_an_exhausted_counter() -> None:
    # urllib3 counts a spent counter down to -1 and then says "exhausted"; a copy must be able to hold it.
    policy = RetryPolicy(0)
    spent = policy.new(total=-1)
    assert spent.total == -1 and spent.is_exhausted()
    with pytest.raises(ValueError, match="total: must be >= 0"):
        RetryPolicy(-1)
