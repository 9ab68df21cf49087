"""The ``responses`` scenarios of resilient_session.testing, with plain requests and with ResilientSession."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses

from resilient_session import APIConnectionError, ResilientSession, RetryPolicy, ServerError, testing
from resilient_session.errors import APIConnectTimeout, APIReadTimeout, IncompleteBodyError

URL = "https://api.example.test/v1/orders"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def session() -> Iterator[ResilientSession]:
    with ResilientSession() as s:
        yield s


def test_flaky_is_retried_to_success(mocked: responses.RequestsMock, session: ResilientSession) -> None:
    scenario = testing.flaky(URL, failures=2, mock=mocked)
    answer = session.get(URL)
    assert answer.status_code == 200
    assert answer.json() == {"ok": True}
    assert scenario.call_count == 3


def test_flaky_as_plain_requests_sees_it(mocked: responses.RequestsMock) -> None:
    scenario = testing.flaky(URL, failures=2, status=502, mock=mocked)
    statuses = [requests.get(URL).status_code for _ in range(4)]
    assert statuses == [502, 502, 200, 200]
    assert scenario.call_count == 4


def test_flaky_outlasting_the_retries_returns_the_last_failure() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        scenario = testing.flaky(URL, failures=5, mock=mocked)
        with ResilientSession(retry=RetryPolicy(total=2)) as session:
            assert session.get(URL).status_code == 503
    assert scenario.call_count == 3


def test_flaky_options(mocked: responses.RequestsMock) -> None:
    scenario = testing.flaky(
        URL, failures=1, status=500, method="POST", json={"id": 7}, retry_after=3, mock=mocked
    )
    first, second = requests.post(URL), requests.post(URL)
    assert (first.status_code, first.headers["Retry-After"]) == (500, "3")
    assert second.json() == {"id": 7}
    assert scenario.method == "POST"
    assert scenario.call_count == 2


def test_flaky_with_no_failures_succeeds_at_once(mocked: responses.RequestsMock) -> None:
    scenario = testing.flaky(URL, failures=0, mock=mocked)
    assert requests.get(URL).status_code == 200
    assert scenario.call_count == 1


def test_flaky_rejects_negative_failures() -> None:
    with pytest.raises(ValueError, match="failures"):
        testing.flaky(URL, failures=-1)


def test_works_with_the_module_level_mock() -> None:
    with responses.mock:  # what @responses.activate starts
        scenario = testing.flaky(URL, failures=1)
        assert requests.get(URL).status_code == 503
        assert requests.get(URL).status_code == 200
    assert scenario.call_count == 2


def test_rate_limited_then_ok(mocked: responses.RequestsMock, session: ResilientSession) -> None:
    scenario = testing.rate_limited(URL, retry_after=1, mock=mocked)
    assert session.get(URL).status_code == 200
    assert scenario.call_count == 2


def test_rate_limited_headers(mocked: responses.RequestsMock) -> None:
    testing.rate_limited(URL, retry_after=2.5, times=2, mock=mocked)
    answers = [requests.get(URL) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "2.5"


def test_rate_limited_with_http_date_or_no_header(mocked: responses.RequestsMock) -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    testing.rate_limited(URL, retry_after=date, mock=mocked)
    testing.rate_limited(URL + "/bare", retry_after=None, mock=mocked)
    assert requests.get(URL).headers["Retry-After"] == date
    assert "Retry-After" not in requests.get(URL + "/bare").headers
    assert requests.get(URL).status_code == requests.get(URL + "/bare").status_code == 200


def test_malformed_json(mocked: responses.RequestsMock, session: ResilientSession) -> None:
    scenario = testing.malformed_json(URL, mock=mocked)
    answer = session.get(URL)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.text == testing.MALFORMED_JSON
    with pytest.raises(requests.JSONDecodeError):
        answer.json()
    assert scenario.call_count == 1


@pytest.mark.parametrize(
    ("connect", "ours", "theirs"),
    [(False, APIReadTimeout, requests.ReadTimeout), (True, APIConnectTimeout, requests.ConnectTimeout)],
)
def test_timeout(
    mocked: responses.RequestsMock,
    session: ResilientSession,
    connect: bool,
    ours: type[Exception],
    theirs: type[Exception],
) -> None:
    scenario = testing.timeout(URL, connect=connect, mock=mocked)
    with pytest.raises(ours) as caught:
        session.get(URL)
    assert isinstance(caught.value, theirs)
    with pytest.raises(theirs):
        requests.get(URL)
    assert scenario.call_count == 2  # one each: responses does not retry exceptions


def test_connection_error(mocked: responses.RequestsMock, session: ResilientSession) -> None:
    scenario = testing.connection_error(URL, method="DELETE", mock=mocked)
    with pytest.raises(APIConnectionError) as caught:
        session.delete(URL)
    assert isinstance(caught.value, requests.ConnectionError)
    assert caught.value.method == "DELETE"
    assert scenario.call_count == 1


def test_incomplete_body(mocked: responses.RequestsMock, session: ResilientSession) -> None:
    testing.incomplete_body(URL, mock=mocked)
    with pytest.raises(IncompleteBodyError) as caught:
        session.get(URL)
    assert isinstance(caught.value, requests.exceptions.ChunkedEncodingError)


def test_problem(mocked: responses.RequestsMock) -> None:
    testing.problem(URL, 422, title="Invalid order", detail="qty must be > 0", mock=mocked)
    answer = requests.get(URL)
    assert answer.status_code == 422
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json() == {
        "type": "about:blank",
        "title": "Invalid order",
        "status": 422,
        "detail": "qty must be > 0",
    }


def test_soap_fault(mocked: responses.RequestsMock) -> None:
    testing.soap_fault(URL, mock=mocked)
    with ResilientSession(raise_for_status=True) as session, pytest.raises(ServerError) as caught:
        session.post(URL, data="<request/>")
    assert caught.value.status == 500
    assert b"<faultstring>Upstream ledger unavailable</faultstring>" in caught.value.response.content
