"""The scrubber of resilient_session._redact: every encoding of a secret, exception copies, variable names."""

from __future__ import annotations

import string
import traceback

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from resilient_session._redact import (
    HIDDEN_ENV_NAME,
    REDACTED,
    contains_secret,
    credential_pair,
    looks_like_env_name,
    redact_text,
    scrubbed_exception,
    secret_forms,
    shown_env_name,
)
from tests.secret_forms import SPECIALS, forms, leaks

SECRET = "s3cr+t/k=y%20:@ x"

secrets = st.text(alphabet=string.ascii_letters + string.digits + SPECIALS + '"\\é', min_size=4, max_size=40)


@pytest.mark.parametrize("name", sorted(forms(SECRET, "user")))
def test_each_form_is_scrubbed_inside_a_sentence(name: str) -> None:
    form = forms(SECRET, "user")[name]
    text = f"before {form} after"
    scrubbed = redact_text(text, [SECRET, credential_pair("user", SECRET)])
    assert scrubbed == f"before {REDACTED} after"


@given(
    secret=secrets,
    left=st.text(alphabet="()<>;!", max_size=10),
    right=st.text(alphabet="()<>;!", max_size=10),
)
def test_no_form_of_any_secret_survives(secret: str, left: str, right: str) -> None:
    pair = credential_pair("svc", secret)
    for name, form in forms(secret, "svc").items():
        scrubbed = redact_text(f"{left}{form}{right}", [secret, pair])
        assert scrubbed == f"{left}{REDACTED}{right}", name


def test_percent_escapes_match_in_either_hex_case() -> None:
    assert redact_text("k=a%2fb%3Dc", ["a/b=c"]) == f"k={REDACTED}"


def test_short_values_are_left_alone() -> None:
    assert secret_forms("abc") == frozenset()
    assert redact_text("abc abc", ["abc"]) == "abc abc"


def test_contains_secret() -> None:
    assert contains_secret("x=" + "s3cr%2Bt%2Fk%3Dy%2520%3A%40+x", [SECRET])
    assert not contains_secret("nothing here", [SECRET])


def test_scrubbed_exception_keeps_the_type_and_drops_request_traceback_and_raw_chain() -> None:
    request = requests.Request(
        "POST", "https://id.example.com/token", data={"client_secret": SECRET}
    ).prepare()
    try:
        try:
            raise ValueError(f"inner {SECRET}")
        except ValueError as inner:
            raise requests.ConnectionError(f"outer {SECRET}", request=request) from inner
    except requests.ConnectionError as exc:
        original = exc
    copy = scrubbed_exception(original, [SECRET])
    assert type(copy) is requests.ConnectionError
    assert copy.__traceback__ is None and getattr(copy, "request", None) is None
    assert isinstance(copy.__cause__, ValueError) and copy.__cause__.__traceback__ is None
    text = "".join(traceback.format_exception(copy))
    assert "outer" in text and "inner" in text
    assert not leaks(text, SECRET)


def test_a_suppressed_context_is_not_carried_over() -> None:
    try:
        try:
            raise KeyError(SECRET)
        except KeyError:
            raise RuntimeError("clean") from None
    except RuntimeError as exc:
        copy = scrubbed_exception(exc, [SECRET])
    assert copy.__context__ is None and copy.__cause__ is None


def test_an_exception_whose_constructor_needs_more_arguments_is_still_copied() -> None:
    class Picky(Exception):
        def __init__(self, a: str, b: str) -> None:
            super().__init__(f"{a} {b}")

    copy = scrubbed_exception(Picky("x", SECRET), [SECRET])
    assert type(copy) is Picky and str(copy) == f"x {REDACTED}"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("STRIPE_KEY", True),
        ("OAUTH2_CLIENT_SECRET", True),
        ("S3_TOKEN", True),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", False),
        ("AKIAIOSFODNN7EXAMPLE", False),
        ("lower_case_name", False),
        ("A" * 70, False),
    ],
)
def test_only_what_looks_like_a_variable_name_is_shown(name: str, shown: bool) -> None:
    assert looks_like_env_name(name) is shown
    assert shown_env_name(name) == (name if shown else HIDDEN_ENV_NAME)
