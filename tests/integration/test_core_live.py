"""The core's promises against a server that misbehaves byte by byte: one retry chain per call, bodies
that cannot be replayed are not, and a deadline nothing on the wire can outlive."""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from resilient_session import (
    APIConnectionError,
    DeadlineExceededError,
    ResilientSession,
    RetryBudget,
    RetryPolicy,
)
from resilient_session.errors import IncompleteBodyError
from tests.integration.rawserver import (
    RawServer,
    answer,
    cut_mid_body,
    drip_body,
    drip_headers,
    hang,
    reset_before_answer,
)

FAST: dict[str, Any] = {"backoff_factor": 0.01}
SLACK = 0.1  # a call with a deadline ends within deadline + 100 ms, a busy 2-core CI machine included


@pytest.fixture
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


def timed(call: object) -> tuple[object, float]:
    started = time.monotonic()
    try:
        result: object = call()  # type: ignore[operator]
    except Exception as exc:
        result = exc
    return result, time.monotonic() - started


# -- 1. one retry chain: never more than total + 1 requests -----------------------------------------


@pytest.mark.parametrize("total", [2, 3, 5])
def test_statuses_then_broken_bodies_send_total_plus_one_requests(raw: RawServer, total: int) -> None:
    raw.script(answer(503), answer(503), cut_mid_body())
    session = ResilientSession(retry=RetryPolicy(total, **FAST), breaker=False)
    with pytest.raises(IncompleteBodyError) as caught:
        session.get(raw.url + "/mix")
    assert raw.count == total + 1
    assert caught.value.attempts == total + 1


def test_503_503_then_cut_bodies_returns_503_when_retries_end_on_a_status(raw: RawServer) -> None:
    raw.script(answer(503), answer(503), cut_mid_body())
    session = ResilientSession(retry=RetryPolicy(1, **FAST), breaker=False)
    assert session.get(raw.url + "/x").status_code == 503
    assert raw.count == 2


def test_broken_bodies_and_resets_mixed_stay_within_total_plus_one(raw: RawServer) -> None:
    raw.script(cut_mid_body(), reset_before_answer(), answer(502), cut_mid_body(rst=False), answer(200))
    session = ResilientSession(retry=RetryPolicy(3, **FAST), breaker=False)
    with pytest.raises(IncompleteBodyError) as caught:
        session.get(raw.url + "/x")
    assert raw.count == 4
    assert caught.value.attempts == 4
    assert isinstance(caught.value, requests.exceptions.ChunkedEncodingError)


def test_the_default_policy_sends_at_most_four_requests(raw: RawServer) -> None:
    raw.script(answer(503), cut_mid_body())
    session = ResilientSession(retry=RetryPolicy(**FAST), breaker=False)
    with pytest.raises(IncompleteBodyError):
        session.get(raw.url + "/x")
    assert raw.count == 4


def test_the_budget_is_charged_for_every_retry_including_broken_bodies(raw: RawServer) -> None:
    # 10 tokens pay for exactly two retries of 5.
    raw.script(answer(503), cut_mid_body())
    budget = RetryBudget(capacity=10, retry_cost=5)
    session = ResilientSession(retry=RetryPolicy(5, **FAST), breaker=False, budget=budget)
    with pytest.raises(IncompleteBodyError):
        session.get(raw.url + "/x")
    assert raw.count == 3


# -- 2. bodies that cannot be replayed are not ----------------------------------------------------


def test_a_generator_body_is_not_retried_after_503(raw: RawServer) -> None:
    raw.script(answer(503), answer(200))
    session = ResilientSession(retry=RetryPolicy(3, **FAST), breaker=False)
    response = session.put(raw.url + "/upload", data=(part for part in [b"first,", b"second"]))
    assert response.status_code == 503
    assert raw.count == 1
    assert raw.received[0].body == b"first,second"


def test_a_generator_body_with_idempotency_key_is_not_retried_after_a_reset(raw: RawServer) -> None:
    raw.script(reset_before_answer(), answer(200))
    session = ResilientSession(retry=RetryPolicy(3, **FAST), breaker=False)
    with pytest.raises(APIConnectionError):
        session.post(raw.url + "/pay", data=iter([b"amount=1"]), headers={"Idempotency-Key": "k1"})
    assert raw.count == 1


def test_a_seekable_body_is_rewound_before_each_retry(raw: RawServer) -> None:
    raw.script(answer(503), answer(503), answer(200))
    session = ResilientSession(retry=RetryPolicy(3, **FAST), breaker=False)
    payload = io.BytesIO(b"prefix|" + b"x" * 5000)
    payload.read(7)  # requests sends from where the file stands
    assert session.put(raw.url + "/file", data=payload).status_code == 200
    assert [r.body for r in raw.received] == [b"x" * 5000] * 3


def test_a_file_body_is_re_sent_whole_after_the_response_broke_mid_body(raw: RawServer) -> None:
    raw.script(cut_mid_body(), answer(200))
    session = ResilientSession(retry=RetryPolicy(3, **FAST), breaker=False, timeout=(1, 2))
    payload = io.BytesIO(b"y" * 3000)
    response, elapsed = timed(lambda: session.put(raw.url + "/file", data=payload))
    assert isinstance(response, requests.Response) and response.status_code == 200
    assert [r.body for r in raw.received] == [b"y" * 3000] * 2
    assert elapsed < 1.0


# -- 3. the deadline ------------------------------------------------------------------------------


@pytest.mark.parametrize("bytewise", [False, True])
def test_dripped_headers_cannot_outlive_the_deadline(raw: RawServer, bytewise: bool) -> None:
    raw.script(drip_headers(0.05 if bytewise else 0.3, bytewise=bytewise))
    session = ResilientSession(deadline=1.0, timeout=(1, 5), breaker=False)
    error, elapsed = timed(lambda: session.get(raw.url + "/drip"))
    assert isinstance(error, DeadlineExceededError)
    assert 1.0 <= elapsed < 1.0 + SLACK
    assert raw.count == 1


def test_a_dripped_body_cannot_outlive_the_deadline(raw: RawServer) -> None:
    raw.script(drip_body(0.1))
    session = ResilientSession(deadline=1.0, breaker=False)
    error, elapsed = timed(lambda: session.get(raw.url + "/drip"))
    assert isinstance(error, DeadlineExceededError)
    assert elapsed < 1.0 + SLACK


def test_a_per_call_deadline_cuts_a_hanging_server(raw: RawServer) -> None:
    raw.script(hang())
    session = ResilientSession(breaker=False)
    error, elapsed = timed(lambda: session.get(raw.url + "/hang", deadline=0.5))
    assert isinstance(error, DeadlineExceededError)
    assert isinstance(error, requests.Timeout)
    assert 0.5 <= elapsed < 0.5 + SLACK


def test_with_stream_true_a_redirect_hops_body_is_bounded(raw: RawServer) -> None:
    hop_body = b"moved" * 100

    def redirect_then_drip(conn, received):
        conn.send(
            b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: %d\r\n\r\n" % len(hop_body)
            + hop_body[:10]
        )
        while not conn.wait(0.1):
            conn.send(b"m")
        return False

    raw.script(redirect_then_drip, answer(200))
    session = ResilientSession(deadline=1.0, breaker=False)
    error, elapsed = timed(lambda: session.get(raw.url + "/start", stream=True))
    assert isinstance(error, DeadlineExceededError)
    assert elapsed < 1.0 + SLACK


def test_with_stream_true_the_body_after_send_is_the_callers(raw: RawServer) -> None:
    raw.script(drip_body(0.02, body=b"z" * 60))
    session = ResilientSession(deadline=0.3, breaker=False)
    response = session.get(raw.url + "/drip", stream=True)
    started = time.monotonic()
    assert response.content == b"z" * 60  # read after send returned: bounded per chunk, not by the deadline
    assert time.monotonic() - started > 0.3


def test_the_deadline_is_kept_across_backoff_and_attempts(raw: RawServer) -> None:
    raw.script(
        answer(503, headers={"Retry-After": "0.4"}), answer(503, headers={"Retry-After": "0.4"}), hang()
    )
    session = ResilientSession(deadline=1.0, retry=RetryPolicy(5, **FAST), breaker=False)
    error, elapsed = timed(lambda: session.get(raw.url + "/x"))
    assert isinstance(error, (DeadlineExceededError, requests.Response))
    assert elapsed < 1.0 + SLACK


# -- 4. policies set after construction -----------------------------------------------------------


def test_retry_set_after_construction_takes_effect(raw: RawServer) -> None:
    raw.script(answer(503))
    session = ResilientSession(breaker=False)
    session.retry = RetryPolicy(0)
    assert session.get(raw.url + "/x").status_code == 503
    assert raw.count == 1
    session.retry = 1
    raw.script(answer(503))
    assert session.get(raw.url + "/x").status_code == 503
    assert raw.count == 2


@pytest.mark.parametrize("off", [False, None])
def test_breaker_turned_off_after_construction(raw: RawServer, off: object) -> None:
    raw.script(reset_before_answer())
    session = ResilientSession(retry=False)
    session.breaker = off  # type: ignore[assignment]
    for _ in range(12):  # the default breaker would open after 5
        with pytest.raises(APIConnectionError) as caught:
            session.get(raw.url + "/x")
        assert type(caught.value) is APIConnectionError
    assert raw.count == 12


def test_timeout_deadline_and_raise_for_status_set_later(raw: RawServer) -> None:
    raw.script(hang())
    session = ResilientSession(breaker=False)
    session.timeout = (1, 0.2)
    error, elapsed = timed(lambda: session.get(raw.url + "/x"))
    assert isinstance(error, requests.ReadTimeout)
    assert elapsed < 0.2 + SLACK
    session.timeout = (1, 5)
    session.deadline = 0.3
    error, elapsed = timed(lambda: session.get(raw.url + "/x"))
    assert isinstance(error, DeadlineExceededError)
    assert elapsed < 0.3 + SLACK
    session.deadline = None
    session.raise_for_status = True
    raw.script(answer(404))
    with pytest.raises(requests.HTTPError):
        session.get(raw.url + "/x")


def test_bad_policy_values_are_refused_at_construction_and_as_attributes() -> None:
    session = ResilientSession()
    for name, value in (("breaker", "yes"), ("budget", 3), ("deadline", "2"), ("deadline", -1)):
        with pytest.raises((TypeError, ValueError)):
            setattr(session, name, value)
        with pytest.raises((TypeError, ValueError)):
            ResilientSession(**{name: value})  # type: ignore[arg-type]


# -- 5. drop-in shapes ----------------------------------------------------------------------------


def test_read_timeout_has_requests_shape_and_no_secret(raw: RawServer) -> None:
    raw.script(hang())
    session = ResilientSession(timeout=(1, 0.2), breaker=False)
    with pytest.raises(requests.ReadTimeout) as caught:
        session.get(raw.url + "/x", params={"api_key": "S3CR3T-value"})
    error = caught.value
    assert isinstance(error.args[0], ReadTimeoutError)
    assert error.args[0].url is not None
    assert "S3CR3T" not in error.args[0].url
    for text in (str(error), repr(error), str(error.args[0]), repr(error.args)):
        assert "S3CR3T" not in text
    assert error.__context__ is None or "S3CR3T" not in str(error.__context__)


def test_connection_error_has_requests_shape_and_no_secret(closed_port: int) -> None:
    session = ResilientSession(retry=RetryPolicy(1, **FAST), breaker=False)
    with pytest.raises(requests.ConnectionError) as caught:
        session.get(f"http://127.0.0.1:{closed_port}/x?token=S3CR3T-value")
    error = caught.value
    assert isinstance(error.args[0], MaxRetryError)
    assert error.args[0].reason is not None
    chain = [error]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    for link in chain:
        assert "S3CR3T" not in str(link) and "S3CR3T" not in repr(link.args)


def test_a_redirect_hop_with_an_undecodable_body_is_followed(raw: RawServer) -> None:
    def bad_gzip_redirect(conn, received):
        body = b"this is not gzip"
        conn.send(
            b"HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return True

    raw.script(
        bad_gzip_redirect, answer(200, gzip.compress(b'{"ok": 1}'), headers={"Content-Encoding": "gzip"})
    )
    for session in (requests.Session(), ResilientSession(breaker=False)):
        raw.script(
            bad_gzip_redirect, answer(200, gzip.compress(b'{"ok": 1}'), headers={"Content-Encoding": "gzip"})
        )
        response = session.get(raw.url + "/start")
        assert response.status_code == 200
        assert response.json() == {"ok": 1}
        assert [hop.status_code for hop in response.history] == [302]


def test_a_body_broken_until_retries_end_is_a_chunked_encoding_error(raw: RawServer) -> None:
    raw.script(cut_mid_body())
    session = ResilientSession(retry=RetryPolicy(2, **FAST), breaker=False)
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as caught:
        session.get(raw.url + "/x")
    assert isinstance(caught.value, IncompleteBodyError)
    assert raw.count == 3


# -- 6. urllib3 Retry options ---------------------------------------------------------------------


def test_retry_after_max_is_honoured(raw: RawServer) -> None:
    raw.script(answer(503, headers={"Retry-After": "20"}), answer(200))
    session = ResilientSession(retry=RetryPolicy(2, retry_after_max=0.2), breaker=False)
    response, elapsed = timed(lambda: session.get(raw.url + "/x"))
    assert isinstance(response, requests.Response) and response.status_code == 200
    assert 0.2 <= elapsed < 1.0


def test_allowed_methods_and_status_forcelist_are_honoured(raw: RawServer) -> None:
    raw.script(answer(500), answer(200))
    session = ResilientSession(
        retry=RetryPolicy(2, status_forcelist={500}, allowed_methods={"POST"}, **FAST), breaker=False
    )
    assert session.post(raw.url + "/x", data=b"a").status_code == 200
    assert raw.count == 2
    raw.script(answer(500), answer(200))
    assert session.get(raw.url + "/x").status_code == 500
    assert raw.count == 1


def test_respect_retry_after_header_false_is_honoured(raw: RawServer) -> None:
    raw.script(answer(429, headers={"Retry-After": "5"}), answer(200))
    session = ResilientSession(
        retry=RetryPolicy(2, respect_retry_after_header=False, backoff_factor=0), breaker=False
    )
    response, elapsed = timed(lambda: session.get(raw.url + "/x"))
    assert isinstance(response, requests.Response) and response.status_code == 200
    assert elapsed < 1.0


@pytest.mark.parametrize("token_endpoint", ["silent", "dripping headers", "dripping body"])
def test_the_first_token_fetch_counts_against_the_deadline(
    raw: RawServer, token_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resilient_session import OAuth2ClientCredentials

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")

    behaviour = {"silent": hang(), "dripping headers": drip_headers(0.2), "dripping body": drip_body(0.1)}
    raw.script(behaviour[token_endpoint])
    auth = OAuth2ClientCredentials(raw.url + "/token", "client", "secret-value", timeout=(1, 10))
    session = ResilientSession(auth=auth, deadline=1.0, breaker=False)
    error, elapsed = timed(lambda: session.get(raw.url + "/resource"))
    assert isinstance(error, DeadlineExceededError)
    assert elapsed < 1.0 + SLACK
    assert [r.path for r in raw.received] == ["/token"]


def test_a_silent_redis_costs_a_call_a_tenth_of_its_deadline_and_the_call_answers(raw: RawServer) -> None:
    import socket
    import threading

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry as RedisRetry

    from resilient_session import CircuitBreaker
    from resilient_session.stores import RedisStore

    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    client = redis.Redis(
        port=silent.getsockname()[1],
        socket_timeout=5,
        socket_connect_timeout=1,
        retry=RedisRetry(NoBackoff(), 0),
    )
    store = RedisStore(client)
    raw.script(answer(200))
    session = ResilientSession(breaker=CircuitBreaker(store=store), budget=False, deadline=0.5)
    try:
        response, elapsed = timed(lambda: session.get(raw.url + "/x"))
        assert isinstance(response, requests.Response) and response.status_code == 200
        # The client's own 5 s socket timeout gave way to a tenth of the time left (0.05 s) for the
        # first op; the store then degraded and answered the breaker's other op locally.
        assert elapsed < 0.25
        assert accepted, "the store did talk to the (silent) Redis"
        assert store.degraded
        assert raw.count == 1
    finally:
        silent.close()
        for sock in accepted:
            sock.close()


def test_max_response_size_stops_a_gzip_bomb_after_the_limit(raw: RawServer) -> None:
    from resilient_session import MalformedResponseError

    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 KB on the wire, 50 MB decoded
    raw.script(answer(200, bomb, headers={"Content-Encoding": "gzip"}))
    session = ResilientSession(breaker=False, max_response_size=1024 * 1024)
    with pytest.raises(MalformedResponseError) as caught:
        session.get(raw.url + "/bomb")
    assert caught.value.code == "body_too_large"
    assert raw.count == 1  # not retried
    assert ResilientSession(breaker=False).get(raw.url + "/bomb").content == b"\0" * (50 * 1024 * 1024)


def test_a_body_break_followed_by_refused_connections_stays_a_chunked_encoding_error(raw: RawServer) -> None:
    # The server cuts the body off, then goes away: what requests raised (ChunkedEncodingError) is
    # still what the call raises once the retries that met refused connections are used up.
    def cut_then_go_away(conn, received):
        cut_mid_body()(conn, received)
        raw.listener.close()
        return False

    raw.script(cut_then_go_away)
    session = ResilientSession(retry=RetryPolicy(2, **FAST), breaker=False)
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as caught:
        session.get(raw.url + "/x")
    assert isinstance(caught.value, IncompleteBodyError)
    assert caught.value.attempts == 3
    assert raw.count == 1


@pytest.mark.parametrize("failure", ["unknown CA", "hostname mismatch", "expired"])
def test_a_certificate_that_fails_verification_is_one_handshake(failure: str) -> None:
    import datetime
    import ssl

    import trustme

    from resilient_session.errors import APISSLError

    ca = trustme.CA()
    if failure == "expired":
        cert = ca.issue_cert(
            "127.0.0.1", not_after=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
        )
    else:
        cert = ca.issue_cert("127.0.0.1" if failure != "hostname mismatch" else "api.example.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    with RawServer(tls=context) as server, ca.cert_pem.tempfile() as ca_file:
        server.script(answer(200))
        session = ResilientSession(retry=RetryPolicy(3, **FAST), breaker=False)
        verify = True if failure == "unknown CA" else ca_file
        with pytest.raises(requests.exceptions.SSLError) as caught:
            session.get(server.url + "/x", verify=verify)
        assert isinstance(caught.value, APISSLError)
        assert caught.value.attempts == 1
        time.sleep(0.05)
        assert server.connections == 1
        assert server.count == 0


def test_dripped_headers_over_tls_cannot_outlive_the_deadline() -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with RawServer(tls=context) as server, ca.cert_pem.tempfile() as ca_file:
        server.script(drip_headers(0.2))
        session = ResilientSession(deadline=1.0, breaker=False, timeout=(1, 5))
        error, elapsed = timed(lambda: session.get(server.url + "/drip", verify=ca_file))
        assert isinstance(error, DeadlineExceededError)
        assert elapsed < 1.0 + SLACK
