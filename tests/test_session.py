"""ResilientSession options, with ``responses`` (what our users test with)."""

from __future__ import annotations

import pickle

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from resilient_session import (
    AuthenticationError,
    NotFoundError,
    RateLimitedError,
    ResilientAdapter,
    ResilientSession,
    RetryPolicy,
    ServerError,
)
from resilient_session.adapter import DEFAULT_TIMEOUT


@responses.activate
def test_default_timeout_applied_when_caller_passes_none() -> None:
    responses.get("https://api.test/x")
    ResilientSession().get("https://api.test/x")
    assert responses.calls[0].request.req_kwargs["timeout"] == DEFAULT_TIMEOUT == (3.05, 30)  # type: ignore[attr-defined]


@responses.activate
def test_session_timeout_option() -> None:
    responses.get("https://api.test/x")
    ResilientSession(timeout=7).get("https://api.test/x")
    assert responses.calls[0].request.req_kwargs["timeout"] == 7  # type: ignore[attr-defined]


@responses.activate
@pytest.mark.parametrize("given", [0.5, (1, 2)])
def test_caller_timeout_always_wins(given: float | tuple[float, float]) -> None:
    responses.get("https://api.test/x")
    ResilientSession(timeout=9).get("https://api.test/x", timeout=given)
    assert responses.calls[0].request.req_kwargs["timeout"] == given  # type: ignore[attr-defined]


@responses.activate
def test_plain_adapter_mounted_by_user_still_gets_the_default_timeout() -> None:
    responses.get("https://legacy.test/x")
    session = ResilientSession(timeout=4)
    session.mount("https://legacy.test/", HTTPAdapter())
    session.get("https://legacy.test/x")
    assert responses.calls[0].request.req_kwargs["timeout"] == 4  # type: ignore[attr-defined]


@responses.activate
def test_per_domain_adapter_has_its_own_policy() -> None:
    responses.get("https://slow.test/x", status=503)
    responses.get("https://other.test/x", status=503)
    session = ResilientSession(retry=RetryPolicy(1, backoff_factor=0))
    session.mount("https://slow.test/", ResilientAdapter(RetryPolicy(4, backoff_factor=0), timeout=60))
    session.get("https://slow.test/x")
    session.get("https://other.test/x")
    slow = [c for c in responses.calls if "slow" in c.request.url]  # type: ignore[operator]
    other = [c for c in responses.calls if "other" in c.request.url]  # type: ignore[operator]
    assert len(slow) == 5
    assert len(other) == 2
    assert slow[0].request.req_kwargs["timeout"] == 60  # type: ignore[attr-defined]
    assert isinstance(session.get_adapter("https://slow.test/y"), ResilientAdapter)


@responses.activate
def test_adapter_without_timeout_inherits_the_session_default() -> None:
    responses.get("https://a.test/x")
    session = ResilientSession(timeout=11)
    session.mount("https://a.test/", ResilientAdapter())
    session.get("https://a.test/x")
    assert responses.calls[0].request.req_kwargs["timeout"] == 11  # type: ignore[attr-defined]


@responses.activate
@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("https://api.test/v1", "/users", "https://api.test/v1/users"),
        ("https://api.test/v1/", "users", "https://api.test/v1/users"),
        ("https://api.test/v1", "", "https://api.test/v1"),
        ("https://api.test/v1", "https://other.test/z", "https://other.test/z"),
        # A bare query string or fragment qualifies base_url itself, as urljoin would read it.
        ("https://api.test/v1", "?page=2", "https://api.test/v1?page=2"),
        ("https://api.test/v1/", "?page=2", "https://api.test/v1/?page=2"),
        ("https://api.test/v1?lang=en", "?page=2", "https://api.test/v1?page=2"),
    ],
)
def test_base_url_joins_relative_urls(base: str, path: str, expected: str) -> None:
    responses.get(expected)
    response = ResilientSession(base_url=base).get(path)
    assert response.url == expected


@responses.activate
def test_base_url_applies_to_prepare_request() -> None:
    responses.get("https://api.test/v1/users?page=2")
    session = ResilientSession(base_url="https://api.test/v1")
    request = requests.Request("GET", "/users", params={"page": 2})
    prepared = session.prepare_request(request)
    assert prepared.url == "https://api.test/v1/users?page=2"
    assert request.url == "/users"  # the caller's object is not changed
    assert session.send(prepared).status_code == 200


@responses.activate
@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthenticationError), (404, NotFoundError), (429, RateLimitedError), (503, ServerError)],
)
def test_raise_for_status_raises_typed_errors_after_retries(
    status: int, cls: type[AuthenticationError | NotFoundError | RateLimitedError | ServerError]
) -> None:
    responses.get("https://api.test/x", status=status, headers={"Retry-After": "0"})
    session = ResilientSession(raise_for_status=True, retry=RetryPolicy(2, backoff_factor=0))
    with pytest.raises(cls) as info:
        session.get("https://api.test/x")
    assert isinstance(info.value, requests.HTTPError)
    assert info.value.response.status_code == status
    retried = status in (429, 503)
    assert len(responses.calls) == (3 if retried else 1)
    assert info.value.attempts == (3 if retried else 1)


@responses.activate
def test_without_raise_for_status_errors_come_back_as_responses() -> None:
    responses.get("https://api.test/x", status=404)
    response = ResilientSession().get("https://api.test/x")
    assert response.status_code == 404
    with pytest.raises(requests.HTTPError) as info:
        response.raise_for_status()
    assert type(info.value) is requests.HTTPError  # requests' own method is unchanged


@responses.activate
def test_session_auth_option() -> None:
    responses.get("https://api.test/x")
    ResilientSession(auth=("user", "pass")).get("https://api.test/x")
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")


def test_retry_option_reaches_the_mounted_adapters() -> None:
    session = ResilientSession(retry=5)
    for prefix in ("http://", "https://"):
        adapter = session.adapters[prefix]
        assert isinstance(adapter, ResilientAdapter)
        assert adapter.max_retries.total == 5
    assert ResilientSession(retry=False).adapters["https://"].max_retries.total == 0  # type: ignore[attr-defined]


def test_repr_shows_no_secret() -> None:
    session = ResilientSession(base_url="https://api.test", auth=("u", "hunter2"))
    assert "hunter2" not in repr(session)


def test_repr_redacts_credentials_in_the_base_url() -> None:
    session = ResilientSession(base_url="https://bob:hunter22@api.test/v1?api_key=k-31415926&page=2")
    text = repr(session)
    assert "hunter22" not in text and "k-31415926" not in text
    assert "api.test/v1" in text and "page=2" in text


@responses.activate
def test_mounted_adapter_inherits_the_session_breaker_and_budget_unless_given() -> None:
    from resilient_session import CircuitBreaker, CircuitOpenError

    responses.get("https://own.test/x", status=503)
    responses.get("https://off.test/x", status=503)
    session = ResilientSession(retry=False, breaker=CircuitBreaker(consecutive_failures=2))
    session.mount("https://own.test/", ResilientAdapter(retry=False, timeout=5))
    session.mount("https://off.test/", ResilientAdapter(retry=False, breaker=False))
    assert session.get_adapter("https://own.test/x").policies(session)[0] is session.breaker  # type: ignore[attr-defined]
    for _ in range(2):
        session.get("https://own.test/x")
    with pytest.raises(CircuitOpenError):
        session.get("https://own.test/x")
    assert len(responses.calls) == 2  # the refusal opened no connection
    for _ in range(4):
        assert session.get("https://off.test/x").status_code == 503


@responses.activate
def test_a_default_built_adapter_follows_the_session_retry_under_responses() -> None:
    responses.get("https://legacy.test/x", status=503)
    responses.get("https://legacy.test/x", json={"ok": True})
    session = ResilientSession(retry=RetryPolicy(1, backoff_factor=0))
    session.mount("https://legacy.test/", HTTPAdapter())
    assert session.get("https://legacy.test/x").json() == {"ok": True}
    assert len(responses.calls) == 2


def test_a_pickled_session_keeps_a_default_built_adapter_following_its_retry() -> None:
    session = ResilientSession(retry=RetryPolicy(1))
    session.mount("https://legacy.test/", HTTPAdapter())
    session.mount("https://own.test/", HTTPAdapter(max_retries=Retry(2)))
    copy = pickle.loads(pickle.dumps(session))
    copy.retry = RetryPolicy(4)
    assert copy.get_adapter("https://legacy.test/x").max_retries is copy.retry
    assert copy.get_adapter("https://own.test/x").max_retries.total == 2
