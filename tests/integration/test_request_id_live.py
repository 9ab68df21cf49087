"""The request id is set before auth runs, so a scheme signing every header signs it (real server)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.auth import AuthBase

from resilient_session import ResilientSession
from resilient_session.observe import bind_request_id

from .rawserver import Conn, RawServer, Received, answer, response

KEY = b"shared-secret-of-the-test"


def _canonical(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [method, path, *sorted(f"{name.lower()}:{value.strip()}" for name, value in headers.items())]
    return "\n".join(lines).encode()


class SignEveryHeader(AuthBase):
    """HMAC over the method, the path and every header the request has when auth runs (Host included)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(str(request.url))
        request.headers["Host"] = url.netloc
        path = url.path + ("?" + url.query if url.query else "")
        message = _canonical(str(request.method), path, dict(request.headers))
        request.headers["X-Signature"] = hmac.new(KEY, message, hashlib.sha256).hexdigest()
        return request


def verify_signature(conn: Conn, received: Received) -> bool:
    """Recompute the signature over every header received but the signature itself; 401 if it differs."""
    headers = {name: value for name, value in received.headers.items() if name != "x-signature"}
    expected = hmac.new(KEY, _canonical(received.method, received.path, headers), hashlib.sha256).hexdigest()
    if hmac.compare_digest(expected, received.headers.get("x-signature", "")):
        conn.send(response(200, b'{"signed": true}'))
    else:
        conn.send(response(401, b'{"signed": false}'))
    return True


@pytest.fixture
def server() -> Iterator[RawServer]:
    with RawServer([verify_signature]) as running:
        yield running


class LateHeader(requests.Session):
    """What the session did before: a header added in send(), after auth ran."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        request.headers["X-Request-ID"] = "added-after-auth"
        return super().send(request, **kwargs)


def test_a_header_added_after_auth_breaks_the_signature(server: RawServer) -> None:
    # The server really checks: the header it got but the auth never saw fails the call.
    assert LateHeader().get(server.url + "/orders", auth=SignEveryHeader()).status_code == 401
    assert requests.Session().get(server.url + "/orders", auth=SignEveryHeader()).status_code == 200


@pytest.mark.parametrize("where", ["call", "session"])
def test_the_request_id_is_signed(server: RawServer, where: str) -> None:
    session = ResilientSession(tracing=False)
    if where == "session":
        session.auth = SignEveryHeader()
        answer_ = session.get(server.url + "/orders?page=2")
    else:
        answer_ = session.get(server.url + "/orders?page=2", auth=SignEveryHeader())
    assert answer_.status_code == 200
    received = server.received[0]
    assert received.headers["x-request-id"] == answer_.request.headers["X-Request-ID"]
    assert len(received.headers["x-request-id"]) == 32


def test_a_retried_call_sends_the_same_signed_request_id(server: RawServer) -> None:
    server.script(answer(503, b"{}"), verify_signature)
    session = ResilientSession(tracing=False, retry=1)
    assert session.post(server.url + "/orders", json={"n": 1}, auth=SignEveryHeader(),
                        headers={"Idempotency-Key": "k1"}).status_code == 200  # fmt: skip
    first, second = server.received
    assert first.headers["x-request-id"] == second.headers["x-request-id"]
    assert first.headers["x-signature"] == second.headers["x-signature"]


def test_a_request_id_set_by_the_caller_is_kept_and_signed(server: RawServer) -> None:
    session = ResilientSession(tracing=False)
    session.headers["X-Request-ID"] = "from-the-session"
    assert session.get(server.url + "/a", auth=SignEveryHeader()).status_code == 200
    assert session.get(server.url + "/b", auth=SignEveryHeader(),
                       headers={"x-request-id": "from-the-call"}).status_code == 200  # fmt: skip
    assert [r.headers["x-request-id"] for r in server.received] == ["from-the-session", "from-the-call"]


def test_prepare_request_then_send_keeps_the_signed_id(server: RawServer) -> None:
    session = ResilientSession(tracing=False)
    prepared = session.prepare_request(requests.Request("GET", server.url + "/p", auth=SignEveryHeader()))
    request_id = prepared.headers["X-Request-ID"]
    assert session.send(prepared).status_code == 200
    assert server.received[0].headers["x-request-id"] == request_id


def test_traceparent_is_set_per_attempt_after_auth(server: RawServer) -> None:
    # Documented limit: with tracing on, traceparent is added to each attempt, after auth ran.
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace import TracerProvider

    traced = ResilientSession(tracing=TracerProvider())
    assert traced.get(server.url + "/t", auth=SignEveryHeader()).status_code == 401
    assert "traceparent" in server.received[0].headers
    assert ResilientSession(tracing=False).get(server.url + "/t", auth=SignEveryHeader()).status_code == 200


# -- cassettes matched on headers (docs/testing.md) ------------------------------------------------------


@pytest.fixture
def plain_server() -> Iterator[RawServer]:
    with RawServer([answer()]) as running:
        yield running


def test_vcrpy_match_on_headers(plain_server: RawServer, tmp_path: Path) -> None:
    vcr = pytest.importorskip("vcr")
    from vcr.errors import CannotOverwriteExistingCassetteException

    url = plain_server.url + "/orders"
    recorder = vcr.VCR(cassette_library_dir=str(tmp_path), match_on=["method", "uri", "headers"])
    with recorder.use_cassette("plain.yaml", record_mode="once"):
        assert requests.Session().get(url).status_code == 200
    with recorder.use_cassette("ours.yaml", record_mode="once"):
        assert ResilientSession().get(url).status_code == 200
    assert plain_server.count == 2

    # A fresh id per call: neither a cassette recorded with plain requests nor one recorded with us matches.
    for cassette in ("plain.yaml", "ours.yaml"):
        with (
            recorder.use_cassette(cassette, record_mode="none"),
            pytest.raises(CannotOverwriteExistingCassetteException),
        ):
            ResilientSession().get(url)
    # Turned off, the plain cassette replays; a bound id makes our own recording replayable.
    with recorder.use_cassette("plain.yaml", record_mode="none"):
        assert ResilientSession(request_id_header=None).get(url).status_code == 200
    with recorder.use_cassette("bound.yaml", record_mode="once"), bind_request_id("fixed-id"):
        assert ResilientSession().get(url).status_code == 200
    with recorder.use_cassette("bound.yaml", record_mode="none"), bind_request_id("fixed-id"):
        assert ResilientSession().get(url).status_code == 200
    assert plain_server.count == 3  # replays never reached the server


def test_betamax_match_requests_on_headers(plain_server: RawServer, tmp_path: Path) -> None:
    betamax = pytest.importorskip("betamax")
    from betamax.exceptions import BetamaxError

    url = plain_server.url + "/orders"
    options = {"match_requests_on": ["method", "uri", "headers"]}

    def call(session: requests.Session, record: str) -> int:
        recorder = betamax.Betamax(session, cassette_library_dir=str(tmp_path))
        with recorder.use_cassette("orders", record=record, **options):
            return session.get(url).status_code

    assert call(requests.Session(), "once") == 200
    with pytest.raises(BetamaxError):
        call(ResilientSession(), "none")
    assert call(ResilientSession(request_id_header=None), "none") == 200
    assert plain_server.count == 1
