"""The attempt loop against requests' own code path: with the same urllib3 ``Retry``, a session sends as
many requests and ends with the same answer or the same exception as ``requests.Session`` whose adapter
lets urllib3 retry inside ``urlopen`` (types, the urllib3 error inside, urllib3's message)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as u3
from urllib3.util.retry import Retry

from resilient_session import APIError, DeadlineExceededError, ResilientSession
from tests.integration.rawserver import Behaviour, RawServer, answer, hang, reset_before_answer

Outcome = tuple[Any, int]


def _plain(retry: Retry) -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def _ours(retry: Retry) -> requests.Session:
    return ResilientSession(retry=retry, breaker=False, budget=False, request_id_header=None)


def _run(make: Callable[[Retry], requests.Session], retry: Retry, script: list[Behaviour]) -> Outcome:
    with RawServer() as server, make(retry) as session:
        server.script(*script)
        try:
            response = session.get(server.url + "/x", timeout=5)
        except Exception as exc:
            return exc, server.count
        return response.status_code, server.count


def _shape(outcome: Any) -> Any:
    """What must be equal: the status, or requests' class with the urllib3 error inside and its message."""
    if not isinstance(outcome, BaseException):
        return outcome
    first = outcome.args[0] if outcome.args else None
    reason = getattr(first, "reason", None)
    return (
        next(c for c in type(outcome).__mro__ if c.__module__.startswith(("requests", "urllib3"))),
        type(first),
        type(reason),
        re.sub(r"port=\d+", "port=N", str(first)),  # each run has its own server
    )


SCENARIOS: dict[str, tuple[Retry, list[Behaviour]]] = {
    "resets until read retries run out": (Retry(total=5, read=2, backoff_factor=0), [reset_before_answer()]),
    "resets until total runs out": (Retry(total=2, backoff_factor=0), [reset_before_answer()]),
    "reset, then an answer": (Retry(total=2, backoff_factor=0), [reset_before_answer(), answer(200)]),
    "read retries off": (Retry(total=3, read=False, backoff_factor=0), [reset_before_answer()]),
    "statuses run out, answer stands": (
        Retry(total=2, status_forcelist=[503], backoff_factor=0, raise_on_status=False),
        [answer(503)],
    ),
    "statuses run out, raise_on_status": (
        Retry(total=2, status_forcelist=[503], backoff_factor=0),
        [answer(503)],
    ),
    "503 then 200": (Retry(total=2, status_forcelist=[503], backoff_factor=0), [answer(503), answer(200)]),
    "status count, not total": (
        Retry(total=9, status=1, status_forcelist=[502], backoff_factor=0, raise_on_status=False),
        [answer(502)],
    ),
}


@pytest.mark.parametrize(("retry", "script"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_same_requests_and_same_outcome_as_requests_own_retries(
    retry: Retry, script: list[Behaviour]
) -> None:
    theirs, their_count = _run(_plain, retry, script)
    ours, our_count = _run(_ours, retry, script)
    assert our_count == their_count
    assert _shape(ours) == _shape(theirs)
    if isinstance(theirs, BaseException):
        assert isinstance(ours, type(theirs))
        assert isinstance(ours, APIError)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "retry",
    [Retry(total=2, backoff_factor=0), Retry(total=3, connect=1, backoff_factor=0), Retry(2, connect=False)],
    ids=["total", "connect count", "connect retries off"],
)
def test_a_refused_connection_ends_as_with_requests(retry: Retry) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/x"
    outcomes = []
    for make in (_plain, _ours):
        with make(retry) as session:
            try:
                session.get(url, timeout=5)
            except Exception as exc:
                outcomes.append(exc)
    theirs, ours = outcomes
    assert isinstance(ours, type(theirs))
    first_theirs = theirs.args[0] if theirs.args else None
    first_ours = ours.args[0] if ours.args else None
    assert type(first_ours) is type(first_theirs)
    assert type(getattr(first_ours, "reason", None)) is type(getattr(first_theirs, "reason", None))
    if not isinstance(theirs, requests.RequestException):
        assert isinstance(theirs, u3.NewConnectionError)  # requests lets it through unwrapped


def test_one_prepared_request_sent_by_two_threads_keeps_each_calls_deadline() -> None:
    # A PreparedRequest handed to send() may be shared: each send keeps its own session's deadline.
    with RawServer() as server:
        server.script(hang())
        prepared = requests.Request("GET", server.url + "/x").prepare()
        ended: dict[str, float] = {}

        def send(name: str, deadline: float) -> None:
            session = ResilientSession(deadline=deadline, breaker=False, budget=False)
            started = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                session.send(prepared)
            ended[name] = time.monotonic() - started

        threads = [
            threading.Thread(target=send, args=("short", 0.3)),
            threading.Thread(target=send, args=("long", 1.5)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert 0.25 < ended["short"] < 1.2
    assert 1.4 < ended["long"] < 4.0
