"""ResilientAdapter: error mapping and options, with ``responses``."""

from __future__ import annotations

import pickle

import pytest
import requests
import requests_mock
import responses
from requests import exceptions as rexc

from resilient_session import APIConnectionError, ResilientAdapter, ResilientSession, RetryPolicy
from resilient_session.errors import APIConnectTimeout, APIReadTimeout, APISSLError


@responses.activate
@pytest.mark.parametrize(
    ("raised", "typed"),
    [
        (rexc.ConnectionError("boom"), APIConnectionError),
        (rexc.ConnectTimeout("slow connect"), APIConnectTimeout),
        (rexc.ReadTimeout("slow read"), APIReadTimeout),
        (rexc.SSLError("bad cert"), APISSLError),
    ],
)
def test_requests_exceptions_become_typed_twins(
    raised: Exception, typed: type[APIConnectionError | APIConnectTimeout | APIReadTimeout]
) -> None:
    responses.get("https://api.test/x?token=SECRET", body=raised)
    with pytest.raises(typed) as info:
        ResilientSession().get("https://api.test/x?token=SECRET")
    assert isinstance(info.value, type(raised))
    assert info.value.method == "GET"
    assert info.value.url == "https://api.test/x?token=***"
    assert "SECRET" not in str(info.value)


@responses.activate
def test_programming_errors_pass_through_unchanged() -> None:
    responses.get("https://api.test/x", body=rexc.InvalidHeader("bad header"))
    with pytest.raises(rexc.InvalidHeader) as info:
        ResilientSession().get("https://api.test/x")
    assert type(info.value) is rexc.InvalidHeader


class UpstreamDown(rexc.ConnectionError):
    """What an API client or a test double defines: its own subclass of a requests exception."""


class SlowUpstream(rexc.ReadTimeout):
    pass


@responses.activate
@pytest.mark.parametrize("raised", [UpstreamDown("down"), SlowUpstream("slow")], ids=type)
def test_a_responses_body_that_subclasses_a_requests_exception_keeps_its_identity(raised: Exception) -> None:
    responses.get("https://api.test/x", body=raised)
    with pytest.raises(type(raised)) as info:
        ResilientSession().get("https://api.test/x")
    assert info.value is raised
    assert not isinstance(info.value, APIConnectionError | APIReadTimeout)


def mocked(exc: Exception) -> ResilientSession:
    """A session sending through a mounted ``requests_mock`` adapter (not a ``Mocker``, which bypasses the
    session's adapter look-up altogether)."""
    adapter = requests_mock.Adapter()
    adapter.register_uri("GET", "https://api.test/x", exc=exc)
    session = ResilientSession()
    session.mount("https://api.test/", adapter)
    return session


@pytest.mark.parametrize("raised", [UpstreamDown("down"), SlowUpstream("slow")], ids=type)
def test_requests_mock_exc_that_subclasses_a_requests_exception_keeps_its_identity(raised: Exception) -> None:
    with pytest.raises(type(raised)) as info:
        mocked(raised).get("https://api.test/x")
    assert info.value is raised


def test_requests_mock_exc_of_requests_own_class_is_still_typed() -> None:
    raised = rexc.ConnectionError("refused")
    with pytest.raises(APIConnectionError) as info:
        mocked(raised).get("https://api.test/x")
    assert info.value is not raised


def test_missing_schema_is_requests_own_error() -> None:
    with pytest.raises(rexc.MissingSchema):
        ResilientSession().get("not-a-url")


def test_adapter_options_and_max_retries() -> None:
    adapter = ResilientAdapter(RetryPolicy(7), timeout=(1, 2), deadline=9)
    assert isinstance(adapter.max_retries, RetryPolicy)
    assert adapter.max_retries.total == 7
    assert (adapter.timeout, adapter.deadline) == ((1, 2), 9)
    legacy = ResilientAdapter(max_retries=2)
    assert legacy.max_retries.total == 2


def test_adapter_pickles_with_its_policy() -> None:
    adapter = ResilientAdapter(RetryPolicy(4, backoff_factor=0.1), timeout=5, deadline=3)
    copy = pickle.loads(pickle.dumps(adapter))
    assert isinstance(copy.max_retries, RetryPolicy)
    assert copy.max_retries.total == 4
    assert (copy.timeout, copy.deadline) == (5, 3)


@responses.activate
def test_adapter_works_on_a_plain_requests_session() -> None:
    responses.get("https://api.test/x", status=503)
    responses.get("https://api.test/x", body=b"ok")
    session = requests.Session()
    session.mount("https://", ResilientAdapter(RetryPolicy(backoff_factor=0)))
    response = session.get("https://api.test/x")
    assert response.text == "ok"
    assert response.attempts == 2  # type: ignore[attr-defined]
