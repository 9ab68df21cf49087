"""Option specs: one check for the constructor (Python values) and the integrations file (TOML values)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from urllib3.util import Retry, Timeout

from resilient_session import (
    CircuitBreaker,
    InvalidConfigError,
    ResilientAdapter,
    ResilientSession,
    RetryBudget,
    RetryPolicy,
)
from resilient_session._options import Option, check_options
from resilient_session.config import load_config
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


# -- the session's options: refused at construction with the integrations file's words ---------------

#: (option, Python value, the same value written in the file)
REFUSED_BY_BOTH: list[tuple[str, Any, Any]] = [
    ("timeout", -1, -1),
    ("timeout", 0, 0),
    ("timeout", math.inf, math.inf),
    ("timeout", "10s", "10s"),
    ("timeout", True, True),
    ("timeout", (1, 2, 3), [1, 2, 3]),
    ("timeout", (1, -2), [1, -2]),
    ("timeout", (0, 5), [0, 5]),
    ("base_url", "api.example.com/v1", "api.example.com/v1"),
    ("base_url", "ftp://files.example.com", "ftp://files.example.com"),
    ("base_url", "https://", "https://"),
    ("base_url", "http://api.example.com:99999", "http://api.example.com:99999"),
    ("base_url", " ", " "),
    ("base_url", 42, 42),
    ("retry", "3", "3"),
    ("retry", 2.5, 2.5),
    ("retry", -1, -1),
    ("deadline", -1, -1),
    ("deadline", 0, 0),
    ("deadline", "30", "30"),
    ("raise_for_status", "yes", "yes"),
    ("request_id_header", "X Request", "X Request"),
]


def file_problem(option: str, value: Any) -> str:
    """The one problem the integrations file reports for *option* = *value*, its location removed."""
    table = {"base_url": "https://api.example.com", option: value}
    with pytest.raises(InvalidConfigError) as info:
        load_config({"integrations": {"api": table}})
    (problem,) = info.value.problems
    assert problem.startswith("integrations.api.")
    return problem.removeprefix("integrations.api.")


@pytest.mark.parametrize(("option", "value", "in_file"), REFUSED_BY_BOTH)
def test_the_session_refuses_what_the_file_refuses_in_the_same_words(
    option: str, value: Any, in_file: Any
) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        ResilientSession(**{option: value})
    message = str(info.value)
    assert message.startswith(option), message  # the option's name first
    assert message == file_problem(option, in_file)


@pytest.mark.parametrize(
    ("option", "value", "in_file"), [case for case in REFUSED_BY_BOTH if case[0] in ("timeout", "base_url")]
)
def test_setting_the_attribute_later_is_checked_the_same_way(option: str, value: Any, in_file: Any) -> None:
    session = ResilientSession(base_url="https://api.example.com", timeout=5)
    with pytest.raises((TypeError, ValueError)) as info:
        setattr(session, option, value)
    assert str(info.value) == file_problem(option, in_file)
    # Refused means unchanged: the next call uses what was there.
    assert session.timeout == 5 and session.base_url == "https://api.example.com"


@pytest.mark.parametrize(("option", "value"), [("timeout", -1), ("timeout", (1, 2, 3)), ("deadline", 0)])
def test_an_adapter_refuses_them_too(option: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        ResilientAdapter(**{option: value})
    assert str(info.value) == file_problem(option, value if not isinstance(value, tuple) else list(value))


def test_a_wrong_type_is_a_type_error_a_bad_value_a_value_error_for_the_session_too() -> None:
    with pytest.raises(TypeError):
        ResilientSession(retry="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ResilientSession(timeout=(1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ResilientSession(timeout=-1)
    with pytest.raises(ValueError):
        ResilientSession(base_url="api.example.com/v1")


def test_a_per_call_deadline_is_checked_the_same_way() -> None:
    session = ResilientSession()
    with pytest.raises(ValueError, match=r"^deadline: must be > 0, got -1$"):
        session.get("http://127.0.0.1:9/", deadline=-1)


def test_what_python_alone_can_say_is_still_accepted() -> None:
    # None parts (no bound, as in requests), urllib3 objects, None for "the default" or "off".
    for timeout in (None, (None, None), (3.05, None), Timeout(connect=1, read=None), 5, 2.5):
        assert ResilientSession(timeout=timeout).timeout == timeout
    for retry in (None, True, False, 0, 3, Retry(2)):
        ResilientSession(retry=retry)
    session = ResilientSession(base_url=None, deadline=None, request_id_header=None)
    session.base_url = "http://127.0.0.1:8080/v1"
    session.timeout = (1, 2)
    assert session.base_url == "http://127.0.0.1:8080/v1" and session.timeout == (1, 2)


def test_the_file_takes_a_timeout_pair_and_retry_true_as_python_does() -> None:
    table = {"base_url": "https://api.example.com", "timeout": [1, 2.5], "retry": True}
    (config,) = load_config({"integrations": {"api": table}}).values()
    assert config.timeout == (1.0, 2.5)
    assert isinstance(config.retry, RetryPolicy) and config.retry.total == RetryPolicy().total


def test_a_credential_in_base_url_is_refused_by_the_file_only() -> None:
    # The file is committed; a URL in code may come from a secret store, as requests allows.
    url = "https://user:pw@api.example.com"
    assert ResilientSession(base_url=url).base_url == url
    assert file_problem("base_url", url).startswith("base_url: must not contain a password")


# -- RetryPolicy names itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [lambda: RetryPolicy(backof_factor=1), lambda: RetryPolicy().new(backof_factor=1)],
)
def test_a_misspelt_retry_option_is_a_type_error_naming_retry_policy_and_the_option(build: Any) -> None:
    with pytest.raises(TypeError) as info:
        build()
    message = str(info.value)
    assert "RetryPolicy" in message and "'backof_factor'" in message
    assert "did you mean 'backoff_factor'" in message
    assert "Retry.__init__" not in message


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: RetryPolicy(backoff_factor="1"), TypeError),  # type: ignore[arg-type]
        (lambda: RetryPolicy(total=-2), ValueError),
        (lambda: RetryPolicy().new(backoff_max=-1), ValueError),
        (lambda: RetryPolicy(redirect=5), ValueError),
    ],
)
def test_every_retry_policy_error_names_retry_policy(build: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="RetryPolicy"):
        build()
