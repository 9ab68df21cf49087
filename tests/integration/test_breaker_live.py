"""Circuit breaker, retry budget and bulkhead against real servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import urllib3.util.connection

from resilient_session import (
    APIConnectionError,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    ResilientAdapter,
    ResilientSession,
    RetryBudget,
    RetryPolicy,
)
from resilient_session.policies import StateChange
from resilient_session.stores import MemoryStore

from .upstream import Reply, Upstream


class Clock:
    """The breaker's time, moved by the test: open waits are stepped over, not slept through."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MortalServer:
    """An HTTP server that can die (its port then refuses connections) and come back on the same port."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/health"
        self.hits = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.hits += 1
                body = json.dumps({"ok": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                # No keep-alive: when the server dies, no open connection outlives it.
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    def die(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def mortal() -> Iterator[MortalServer]:
    server = MortalServer()
    server.start()
    yield server
    server.die()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every socket urllib3 tries to open."""
    opened: list[object] = []
    real = urllib3.util.connection.create_connection

    def counting(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    return opened


def test_upstream_dies_circuit_opens_fast_fails_probes_and_closes_on_return(
    mortal: MortalServer, connects: list[object]
) -> None:
    events: list[StateChange] = []
    clock = Clock()
    breaker = CircuitBreaker(
        store=MemoryStore(clock=clock),
        consecutive_failures=3,
        open_wait=0.3,
        wait_multiplier=2.0,
        listeners=[events.append],
    )
    session = ResilientSession(breaker=breaker, retry=RetryPolicy(1, backoff_factor=0.01))

    assert all(session.get(mortal.url).ok for _ in range(5))

    mortal.die()
    for _ in range(3):
        with pytest.raises(APIConnectionError):
            session.get(mortal.url)
    assert [(e.old.value, e.new.value) for e in events] == [("closed", "open")]

    opened_before = len(connects)
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        with pytest.raises(CircuitOpenError) as caught:
            session.get(mortal.url)
        timings.append(time.perf_counter() - started)
    assert len(connects) == opened_before  # no socket while open
    assert statistics.median(timings) < 0.002
    assert caught.value.host == f"http://127.0.0.1:{mortal.port}"
    assert caught.value.retry_in == pytest.approx(0.3)  # the breaker's clock has not moved

    clock.advance(0.299)
    with pytest.raises(CircuitOpenError):
        session.get(mortal.url)  # still open a millisecond before the wait is over
    clock.advance(0.001)
    with pytest.raises(APIConnectionError):
        session.get(mortal.url)  # the probe finds it still down
    assert len(connects) == opened_before + 1  # one probe, not retried
    assert events[-1].reason == "probe failed"
    assert events[-1].retry_in == pytest.approx(0.6)  # the wait grew

    mortal.start()
    with pytest.raises(CircuitOpenError) as caught:
        session.get(mortal.url)
    assert caught.value.retry_in == pytest.approx(0.6)
    clock.advance(0.6)
    assert session.get(mortal.url).json() == {"ok": True}  # the probe succeeds
    assert all(session.get(mortal.url).ok for _ in range(5))
    assert [(e.old.value, e.new.value) for e in events] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_an_upstream_answering_503_stops_receiving_calls_while_open(upstream: Upstream) -> None:
    url = upstream.script("/sick", Reply(503, b"overloaded"))
    breaker = CircuitBreaker(consecutive_failures=4, open_wait=60)
    session = ResilientSession(breaker=breaker, retry=False)
    outcomes: list[int | str] = []
    for _ in range(50):
        try:
            outcomes.append(session.get(url).status_code)
        except CircuitOpenError:
            outcomes.append("open")
    assert outcomes == [503] * 4 + ["open"] * 46
    assert upstream.count("/sick") == 4


def test_retry_budget_caps_the_retries_a_dead_upstream_receives(upstream: Upstream) -> None:
    url = upstream.script("/down", Reply(503))
    budget = RetryBudget(capacity=50)
    session = ResilientSession(budget=budget, breaker=False, retry=RetryPolicy(3, backoff_factor=0.001))
    for _ in range(20):
        assert session.get(url).status_code == 503
    assert upstream.count("/down") == 20 + 10  # every first attempt, then 50 tokens / 5 = 10 retries
    unbudgeted = upstream.script("/down2", Reply(503))
    plain = ResilientSession(budget=False, breaker=False, retry=RetryPolicy(3, backoff_factor=0.001))
    for _ in range(20):
        plain.get(unbudgeted)
    assert upstream.count("/down2") == 80


def test_bulkhead_refuses_a_third_call_while_two_hang(upstream: Upstream) -> None:
    url = upstream.script("/slow", Reply(hang=True))
    bulkhead = Bulkhead(2, max_wait=0.1)
    session = ResilientSession(bulkhead=bulkhead, retry=False, timeout=(1, 1))
    results: list[BaseException] = []

    def hang() -> None:
        try:
            session.get(url)
        except requests.RequestException as exc:
            results.append(exc)

    threads = [threading.Thread(target=hang) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while upstream.count("/slow") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(BulkheadFullError) as caught:
        session.get(url)
    assert 0.1 <= time.monotonic() - started < 1.0
    assert caught.value.max_concurrent == 2
    assert upstream.count("/slow") == 2
    for thread in threads:
        thread.join()
    assert len(results) == 2 and all(isinstance(r, requests.ReadTimeout) for r in results)
    assert bulkhead.in_flight(bulkhead.key_for(url)) == 0


# -- what opens the circuit by default: evidence that the host is unavailable -------------------------

NO_WAIT = RetryPolicy(3, backoff_factor=0)  # the default policy, without the backoff sleeps


def test_twelve_500s_from_one_path_leave_the_circuit_closed_and_the_healthy_path_working(
    upstream: Upstream,
) -> None:
    bug = upstream.script("/orders/42", Reply(500, b'{"error": "NullPointerException"}'))
    healthy = upstream.script("/orders", Reply(200, b'{"orders": []}'))
    session = ResilientSession(retry=NO_WAIT)  # the default breaker and budget
    assert [session.get(bug).status_code for _ in range(12)] == [500] * 12
    assert upstream.count("/orders/42") == 12  # a 500 is not retried either
    assert session.get(healthy).json() == {"orders": []}
    assert upstream.count("/orders") == 1
    assert session.breaker is not None
    snapshot = session.breaker.state(session.breaker.key_for(bug))
    assert (snapshot.state.value, snapshot.failures, snapshot.trips) == ("closed", 0, 0)


@pytest.mark.parametrize("status", [501, 505, 599])
def test_other_5xx_do_not_open_the_circuit_by_default(upstream: Upstream, status: int) -> None:
    url = upstream.script("/odd", Reply(status))
    session = ResilientSession(retry=NO_WAIT)
    assert [session.get(url).status_code for _ in range(8)] == [status] * 8
    assert upstream.count("/odd") == 8


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_failures_after_retries_open_the_circuit_by_default(upstream: Upstream, status: int) -> None:
    url = upstream.script("/gw", Reply(status))
    session = ResilientSession(retry=NO_WAIT)
    for _ in range(5):
        assert session.get(url).status_code == status
    assert upstream.count("/gw") == 5 * 4  # each call made its 3 retries first
    with pytest.raises(CircuitOpenError):
        session.get(url)
    assert upstream.count("/gw") == 20


def test_a_503_that_a_retry_cured_is_a_success(upstream: Upstream) -> None:
    url = upstream.script("/blip", Reply(503), Reply(200))
    session = ResilientSession(retry=NO_WAIT, breaker=CircuitBreaker(consecutive_failures=1))
    assert session.get(url).status_code == 200
    upstream.script("/blip", Reply(503), Reply(200))
    assert session.get(url).status_code == 200
    assert upstream.count("/blip") == 2
    assert session.breaker is not None
    assert session.breaker.state(session.breaker.key_for(url)).failures == 0


def test_read_timeouts_open_the_circuit_by_default(upstream: Upstream) -> None:
    url = upstream.script("/slow", Reply(hang=True))
    session = ResilientSession(retry=NO_WAIT, timeout=(1, 0.05))
    for _ in range(5):
        with pytest.raises(requests.ReadTimeout):
            session.get(url)
    assert upstream.count("/slow") == 5  # read timeouts are not retried by default
    with pytest.raises(CircuitOpenError):
        session.get(url)
    assert upstream.count("/slow") == 5


def test_a_health_endpoint_answering_503_by_design(upstream: Upstream) -> None:
    """A sealed vault answers its health check with 503: by default that is its route group's failure,
    so the health group's circuit opens and the data path keeps working; with ``routes=False`` the whole
    host's circuit opens, and the two documented ways out keep the checks working."""
    health = upstream.script("/v1/sys/health", Reply(503, b'{"sealed": true}'))
    data = upstream.script("/v1/secret/app", Reply(200, b'{"data": {}}'))

    default = ResilientSession(retry=False)
    for _ in range(5):
        assert default.get(health).status_code == 503
    with pytest.raises(CircuitOpenError) as refused:
        default.get(health)
    assert refused.value.host == upstream.url + " /v1/sys"
    assert default.get(data).status_code == 200  # another group: its circuit is closed
    assert upstream.count("/v1/sys/health") == 5 and upstream.count("/v1/secret/app") == 1

    upstream.script("/v1/sys/health", Reply(503, b'{"sealed": true}'))
    upstream.script("/v1/secret/app", Reply(200, b'{"data": {}}'))
    whole_host = ResilientSession(retry=False, breaker=CircuitBreaker(routes=False, store=MemoryStore()))
    for _ in range(5):
        assert whole_host.get(health).status_code == 503
    with pytest.raises(CircuitOpenError):
        whole_host.get(data)  # one circuit for the host: open
    assert upstream.count("/v1/sys/health") == 5 and upstream.count("/v1/secret/app") == 0

    # 1. failure_statuses without 503: the checks keep answering 503, the circuit never opens.
    upstream.script("/v1/sys/health", Reply(503, b'{"sealed": true}'))
    tolerant = ResilientSession(
        retry=False, breaker=CircuitBreaker(failure_statuses={502, 504}, routes=False, store=MemoryStore())
    )
    assert [tolerant.get(health).status_code for _ in range(10)] == [503] * 10
    assert tolerant.get(data).status_code == 200
    assert upstream.count("/v1/sys/health") == 10

    # 2. a separate circuit (a name) for the health endpoint: it opens alone, the data path still works.
    upstream.script("/v1/sys/health", Reply(503, b'{"sealed": true}'))
    upstream.script("/v1/secret/app", Reply(200, b'{"data": {}}'))
    session = ResilientSession(retry=False, breaker=CircuitBreaker(routes=False, store=MemoryStore()))
    session.mount(
        upstream.url + "/v1/sys/health",
        ResilientAdapter(retry=False, breaker=CircuitBreaker(name="vault-health", routes=False)),
    )
    for _ in range(5):
        assert session.get(health).status_code == 503
    with pytest.raises(CircuitOpenError) as caught:
        session.get(health)
    assert caught.value.host == "vault-health"
    assert [session.get(data).status_code for _ in range(3)] == [200] * 3
    assert (upstream.count("/v1/sys/health"), upstream.count("/v1/secret/app")) == (5, 3)
