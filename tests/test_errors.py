"""Typed errors: each is also the exception plain requests raises in that situation."""

from __future__ import annotations

import pickle

import pytest
import requests
from requests import exceptions as rexc

from resilient_session import errors


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (errors.APIConnectTimeout, rexc.ConnectTimeout),
        (errors.APIConnectTimeout, rexc.ConnectionError),
        (errors.APIReadTimeout, rexc.ReadTimeout),
        (errors.StalledBodyError, rexc.ConnectionError),
        (errors.DeadlineExceededError, rexc.Timeout),
        (errors.APIConnectionError, rexc.ConnectionError),
        (errors.APISSLError, rexc.SSLError),
        (errors.APIProxyError, rexc.ProxyError),
        (errors.IncompleteBodyError, rexc.ChunkedEncodingError),
        (errors.RetryExhaustedError, rexc.RetryError),
        (errors.APIStatusError, requests.HTTPError),
        (errors.RateLimitedError, requests.HTTPError),
    ],
)
def test_each_error_is_also_the_requests_exception(ours: type[Exception], theirs: type[Exception]) -> None:
    assert issubclass(ours, errors.APIError)
    assert issubclass(ours, theirs)
    assert issubclass(ours, rexc.RequestException)


def test_status_hierarchy() -> None:
    assert issubclass(errors.AuthenticationError, errors.ClientError)
    assert issubclass(errors.NotFoundError, errors.ClientError)
    assert issubclass(errors.RateLimitedError, errors.ClientError)
    assert issubclass(errors.ServerError, errors.APIStatusError)
    assert not issubclass(errors.ServerError, errors.ClientError)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.ClientError),
        (401, errors.AuthenticationError),
        (403, errors.AuthenticationError),
        (404, errors.NotFoundError),
        (409, errors.ClientError),
        (429, errors.RateLimitedError),
        (500, errors.ServerError),
        (503, errors.ServerError),
    ],
)
def test_status_error_class(status: int, cls: type[errors.APIStatusError]) -> None:
    assert errors.status_error_class(status) is cls


def test_context_is_carried_and_url_redacted() -> None:
    error = errors.APIConnectionError(
        "connection failed",
        method="GET",
        url="https://user:pw@api.test/x?api_key=K3Y&page=2",
        attempts=3,
        elapsed=1.5,
        status=503,
    )
    assert error.method == "GET"
    assert error.url == "https://user:***@api.test/x?api_key=***&page=2"
    assert (error.attempts, error.elapsed, error.status) == (3, 1.5, 503)
    text = str(error) + repr(error)
    assert "K3Y" not in text
    assert "pw@" not in text
    assert "attempts=3" in str(error)


def test_request_supplies_method_and_url() -> None:
    request = requests.Request("POST", "https://api.test/x?token=T0K").prepare()
    error = errors.APIReadTimeout("read timed out", request=request)
    assert error.method == "POST"
    assert error.url == "https://api.test/x?token=***"
    assert error.request is request


def test_rate_limited_reads_retry_after_from_the_response() -> None:
    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = "7"
    error = errors.RateLimitedError("slow down", response=response)
    assert error.retry_after == 7.0
    assert error.status == 429


def test_status_error_for_builds_the_right_class() -> None:
    response = requests.Response()
    response.status_code = 404
    response.reason = "Not Found"
    response.url = "https://api.test/things/1?signature=S1G"
    error = errors.status_error_for(response, attempts=2)
    assert isinstance(error, errors.NotFoundError)
    assert error.response is response
    assert "S1G" not in str(error)
    ok = requests.Response()
    ok.status_code = 204
    assert errors.status_error_for(ok) is None


def test_errors_pickle_with_their_context() -> None:
    error = errors.APIReadTimeout("read timed out", method="GET", url="https://h/x", attempts=2, elapsed=0.5)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.APIReadTimeout
    assert (copy.method, copy.url, copy.attempts, copy.elapsed) == ("GET", "https://h/x", 2, 0.5)
    assert str(copy) == str(error)


def test_aliases_for_last_status_and_retry_after() -> None:
    error = errors.ServerError("503 Server Error", status=503, attempts=4)
    assert error.last_status == 503
    refused = errors.CircuitOpenError("circuit open", host="https://api.test:443", retry_in=4.5)
    assert refused.retry_after == refused.retry_in == 4.5
    assert isinstance(refused, requests.ConnectionError)
