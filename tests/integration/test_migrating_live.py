"""The checklist of docs/migrating.md, against a real server on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
import requests
import urllib3

from resilient_session import (
    CircuitBreaker,
    CircuitOpenError,
    DeadlineExceededError,
    ResilientSession,
    RetryPolicy,
)

from .upstream import Reply, Upstream

pytestmark = pytest.mark.integration


# -- timeout=None ---------------------------------------------------------------------------------------


def _read_timeout(response: requests.Response) -> float | None:
    """The timeout of the socket the response arrived on (``None``: blocking, no timeout)."""
    assert response.raw.connection is not None
    sock = response.raw.connection.sock
    timeout: float | None = sock.gettimeout()
    return timeout


def test_timeout_none_means_the_session_default_not_forever(upstream: Upstream) -> None:
    url = upstream.script("/slow", Reply(200, delay=0.5))
    session = ResilientSession(timeout=(1, 0.2), retry=False)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        session.get(url, timeout=None)
    assert time.monotonic() - started < 0.45  # the session's 0.2 s read timeout, not "wait forever"
    assert upstream.count("/slow") == 1

    plain = requests.Session()  # for comparison: requests waits as long as the server takes
    assert plain.get(url, timeout=None).status_code == 200


@pytest.mark.parametrize(
    "forever",
    [(None, None), (3.05, None), urllib3.Timeout(connect=None, read=None), urllib3.Timeout(None)],
    ids=["tuple", "connect-only", "urllib3-timeout-connect-read", "urllib3-timeout-total"],
)
def test_waiting_forever_is_asked_for_explicitly(
    upstream: Upstream, forever: tuple[float | None, float | None] | urllib3.Timeout
) -> None:
    url = upstream.script("/slow", Reply(200, delay=0.5))
    session = ResilientSession(timeout=(1, 0.2), retry=False)
    response = session.get(url, timeout=forever, stream=True)
    assert response.status_code == 200  # waited past the session's 0.2 s
    assert _read_timeout(response) is None  # and no other limit was put in its place
    response.close()


def test_a_session_that_waits_forever_by_default(upstream: Upstream) -> None:
    url = upstream.script("/slow", Reply(200, delay=0.5))
    forever = ResilientSession(timeout=(None, None), retry=False)
    response = forever.get(url, stream=True)
    assert response.status_code == 200 and _read_timeout(response) is None
    response.close()
    # ResilientSession(timeout=None) is not that: it keeps the library default (3.05, 30).
    default = ResilientSession(timeout=None, retry=False)
    response = default.get(url, stream=True)
    assert _read_timeout(response) == 30.0
    response.close()


def test_a_deadline_still_bounds_a_call_that_waits_forever(upstream: Upstream) -> None:
    url = upstream.script("/hang", Reply(hang=True))
    session = ResilientSession(timeout=(None, None), retry=False, deadline=0.3)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        session.get(url)
    assert time.monotonic() - started < 0.5
    assert upstream.count("/hang") == 1


# -- outer retry wrappers ---------------------------------------------------------------------------------


def _open_circuit(upstream: Upstream) -> tuple[ResilientSession, str]:
    url = upstream.script("/down", Reply(503))
    session = ResilientSession(retry=False, breaker=CircuitBreaker(consecutive_failures=2, open_wait=60))
    session.get(url)
    session.get(url)
    with pytest.raises(CircuitOpenError):
        session.get(url)
    return session, url


def test_an_own_retry_loop_retries_circuit_open_errors_unless_it_lets_them_through(
    upstream: Upstream,
) -> None:
    session, url = _open_circuit(upstream)

    def legacy(attempts: int = 5) -> int:
        tried = 0
        for _ in range(attempts):
            tried += 1
            try:
                session.get(url)
            except requests.ConnectionError:  # CircuitOpenError is one
                continue
        return tried

    def fixed(attempts: int = 5) -> int:
        tried = 0
        for _ in range(attempts):
            tried += 1
            try:
                session.get(url)
            except CircuitOpenError:
                raise  # the breaker already decided: retrying now only spins
            except requests.ConnectionError:
                continue
        return tried

    assert legacy() == 5  # five refusals, none of them reached the server
    with pytest.raises(CircuitOpenError):
        fixed()
    assert upstream.count("/down") == 2


def test_tenacity_excludes_circuit_open_errors(upstream: Upstream) -> None:
    tenacity = pytest.importorskip("tenacity")
    session, url = _open_circuit(upstream)
    tries: list[int] = []

    def call() -> requests.Response:
        tries.append(1)
        return session.get(url)

    legacy = tenacity.retry(
        retry=tenacity.retry_if_exception_type(requests.ConnectionError),
        stop=tenacity.stop_after_attempt(4),
        reraise=True,
    )(call)
    with pytest.raises(CircuitOpenError):
        legacy()
    assert len(tries) == 4

    tries.clear()
    fixed = tenacity.retry(
        retry=tenacity.retry_if_exception_type(requests.ConnectionError)
        & tenacity.retry_if_not_exception_type(CircuitOpenError),
        stop=tenacity.stop_after_attempt(4),
        reraise=True,
    )(call)
    with pytest.raises(CircuitOpenError):
        fixed()
    assert len(tries) == 1
    assert upstream.count("/down") == 2


def test_backoff_excludes_circuit_open_errors(upstream: Upstream) -> None:
    backoff = pytest.importorskip("backoff")
    session, url = _open_circuit(upstream)
    tries: list[int] = []

    @backoff.on_exception(
        backoff.constant,
        requests.ConnectionError,
        max_tries=4,
        interval=0,
        giveup=lambda error: isinstance(error, CircuitOpenError),
    )
    def fixed() -> requests.Response:
        tries.append(1)
        return session.get(url)

    with pytest.raises(CircuitOpenError):
        fixed()
    assert len(tries) == 1
    assert upstream.count("/down") == 2


def test_an_outer_retry_loop_multiplies_the_requests_sent(upstream: Upstream) -> None:
    url = upstream.script("/busy", Reply(503))
    session = ResilientSession(retry=RetryPolicy(3, backoff_factor=0), breaker=False)
    for _ in range(3):  # legacy: "try three times on a 503"
        if session.get(url).status_code != 503:
            break
    assert upstream.count("/busy") == 3 * 4  # each of the three calls made its own 3 retries

    upstream.script("/busy", Reply(503))
    assert session.get(url).status_code == 503  # the loop removed: one call, 1 + 3 attempts
    assert upstream.count("/busy") == 4
