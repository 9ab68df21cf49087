"""Failure scenarios for unit tests, on top of `responses <https://github.com/getsentry/responses>`_.

Each helper registers mocked answers for one URL and returns a :class:`Scenario` whose
:attr:`~Scenario.call_count` says how many requests reached it::

    @responses.activate
    def test_survives_two_503s(no_backoff):
        scenario = testing.flaky("https://api.example.com/v1/users", failures=2)
        assert ResilientSession().get("https://api.example.com/v1/users").status_code == 200
        assert scenario.call_count == 3

They work with the module-level ``responses`` mock (``@responses.activate``) or, via ``mock=``, with a
``responses.RequestsMock`` of your own. What ``responses`` cannot imitate: time (no backoff or
``Retry-After`` wait happens, and nothing is ever slow), retries after a connection error (urllib3 never
sees the error, so :func:`timeout` and :func:`connection_error` fail every call at once), and anything
on the socket: resets, stalls or truncation in the middle of a body. Use
:class:`resilient_session.testing.chaos.ChaosServer` for those (see docs/testing.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import responses
from requests import exceptions as rexc

__all__ = [
    "MALFORMED_JSON",
    "Scenario",
    "connection_error",
    "flaky",
    "incomplete_body",
    "malformed_json",
    "problem",
    "rate_limited",
    "soap_fault",
    "timeout",
]

#: The body :func:`malformed_json` serves: JSON cut off mid-document.
MALFORMED_JSON = '{"id": 42, "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-'

_SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <soap:Fault>
      <faultcode>soap:Server</faultcode>
      <faultstring>Upstream ledger unavailable</faultstring>
    </soap:Fault>
  </soap:Body>
</soap:Envelope>
"""

_OK: Mapping[str, Any] = {"ok": True}


@dataclass(frozen=True)
class Scenario:
    """The mocked answers one helper registered, in the order ``responses`` serves them."""

    url: str
    method: str
    registered: Sequence[responses.BaseResponse]

    @property
    def call_count(self) -> int:
        """Requests that reached this scenario's answers."""
        return sum(entry.call_count for entry in self.registered)


def _mock(mock: responses.RequestsMock | None) -> Any:
    # The module itself forwards add() to its default mock, the one @responses.activate starts.
    return responses if mock is None else mock


def _register(
    url: str,
    method: str,
    failures: Sequence[Mapping[str, Any]],
    then: Mapping[str, Any] | None,
    mock: responses.RequestsMock | None,
) -> Scenario:
    """Register *failures* in order, then *then* (served for every later call); ``None``: fail forever."""
    target = _mock(mock)
    answers = [*failures, then] if then is not None else list(failures)
    registered = [target.add(method, url, **answer) for answer in answers]
    return Scenario(url=url, method=method.upper(), registered=registered)


def _success(json: Any) -> dict[str, Any]:
    return {"json": _OK if json is None else json, "status": 200}


def flaky(
    url: str,
    failures: int = 2,
    status: int = 503,
    *,
    method: str = "GET",
    json: Any = None,
    retry_after: float | None = None,
    mock: responses.RequestsMock | None = None,
) -> Scenario:
    """*failures* answers with *status* (a JSON error body), then 200 with *json* for every later call."""
    if failures < 0:
        raise ValueError("failures must be >= 0")
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    failure = {"json": {"error": f"status {status}"}, "status": status, "headers": headers}
    return _register(url, method, [failure] * failures, _success(json), mock)


def rate_limited(
    url: str,
    retry_after: float | str | None = 1,
    *,
    times: int = 1,
    method: str = "GET",
    json: Any = None,
    mock: responses.RequestsMock | None = None,
) -> Scenario:
    """*times* 429 answers with ``Retry-After`` (seconds or an HTTP date; ``None`` omits it), then 200.

    ``responses`` does not wait: the header decides *whether* a retry happens, never how long it takes.
    """
    value = f"{retry_after:g}" if isinstance(retry_after, (int, float)) else retry_after
    headers = {} if value is None else {"Retry-After": value}
    failure = {"json": {"error": "rate limited"}, "status": 429, "headers": headers}
    return _register(url, method, [failure] * times, _success(json), mock)


def malformed_json(
    url: str,
    *,
    status: int = 200,
    method: str = "GET",
    mock: responses.RequestsMock | None = None,
) -> Scenario:
    """An ``application/json`` answer whose body (:data:`MALFORMED_JSON`) is cut off mid-document."""
    answer = {"body": MALFORMED_JSON, "status": status, "content_type": "application/json"}
    return _register(url, method, [answer], None, mock)


def timeout(
    url: str,
    *,
    connect: bool = False,
    method: str = "GET",
    mock: responses.RequestsMock | None = None,
) -> Scenario:
    """Every call times out: ``requests.ReadTimeout`` (``connect=True``: ``ConnectTimeout``).

    It is raised at once, never after a wait, and on every call: ``responses`` bypasses urllib3's retries
    for exceptions. A :class:`~resilient_session.ResilientSession` turns it into its typed twin.
    """
    kind = rexc.ConnectTimeout if connect else rexc.ReadTimeout
    error = kind(f"simulated {'connect' if connect else 'read'} timeout")
    return _register(url, method, [{"body": error}], None, mock)


def connection_error(
    url: str,
    *,
    method: str = "GET",
    mock: responses.RequestsMock | None = None,
) -> Scenario:
    """Every call fails with ``requests.ConnectionError`` (refused, reset, DNS ...), at once."""
    error = rexc.ConnectionError("simulated connection failure")
    return _register(url, method, [{"body": error}], None, mock)


def incomplete_body(
    url: str,
    *,
    method: str = "GET",
    mock: responses.RequestsMock | None = None,
) -> Scenario:
    """Every call fails as a body cut off mid-way does: ``requests.exceptions.ChunkedEncodingError``."""
    error = rexc.ChunkedEncodingError("simulated connection break mid-body")
    return _register(url, method, [{"body": error}], None, mock)


def problem(
    url: str,
    status: int = 400,
    *,
    title: str = "Invalid request",
    detail: str | None = None,
    method: str = "GET",
    mock: responses.RequestsMock | None = None,
) -> Scenario:
    """An RFC 9457 ``application/problem+json`` error answer."""
    payload: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        payload["detail"] = detail
    answer = {"json": payload, "status": status, "content_type": "application/problem+json"}
    return _register(url, method, [answer], None, mock)


def soap_fault(
    url: str,
    *,
    method: str = "POST",
    mock: responses.RequestsMock | None = None,
) -> Scenario:
    """A 500 answer carrying a SOAP 1.1 Fault."""
    answer = {"body": _SOAP_FAULT, "status": 500, "content_type": "text/xml; charset=utf-8"}
    return _register(url, method, [answer], None, mock)
