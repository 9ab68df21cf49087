"""Process-wide protection against real servers on 127.0.0.1 that count what they received: sessions made
per call, per thread and per process share one circuit; one route group's failures close only its group."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from resilient_session import (
    APIConnectionError,
    CircuitBreaker,
    CircuitOpenError,
    ResilientSession,
    registry,
)
from resilient_session.stores import RedisStore, default_store
from tests.test_redis_store import RedisServer

from .upstream import Reply, Upstream


def _outcome(call: Any) -> int | str:
    try:
        return int(call().status_code)
    except CircuitOpenError:
        return "refused"


# -- sessions made per call ------------------------------------------------------------------------


def test_twenty_sessions_made_per_call_share_one_circuit(upstream: Upstream) -> None:
    """The legacy shape of issue 20.1: a new session for every call, against an upstream answering 503."""
    url = upstream.script("/charges", Reply(503, b'{"error": "overloaded"}'))

    def fetch() -> requests.Response:
        with ResilientSession() as session:
            return session.post(url, json={})

    started = time.monotonic()
    outcomes = [_outcome(fetch) for _ in range(20)]
    elapsed = time.monotonic() - started
    assert outcomes == [503] * 5 + ["refused"] * 15  # the default threshold: 5 consecutive failures
    assert upstream.count("/charges") == 5  # the server stopped receiving calls
    assert elapsed < 5.0  # refusals open no socket and never wait


def test_sessions_of_a_registered_integration_share_its_circuit_across_threads(upstream: Upstream) -> None:
    upstream.script("/v1/charges", Reply(503))
    registry.register(
        "billing",
        base_url=upstream.url + "/v1",
        retry=False,
        breaker=CircuitBreaker(consecutive_failures=4, open_wait=30),
    )
    outcomes: list[int | str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(5):
            with ResilientSession(integration="billing") as session:  # a session per call, per thread
                outcome = _outcome(lambda: session.post("/charges", json={}))
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    reached = upstream.count("/v1/charges")
    assert len(outcomes) == 40
    assert outcomes.count(503) == reached
    # One circuit for every thread: 4 failures open it, plus the calls already in flight by then.
    assert 4 <= reached <= 4 + 7
    assert outcomes.count("refused") == 40 - reached
    with pytest.raises(CircuitOpenError) as refused:
        registry.session("billing").post("/charges", json={})
    assert refused.value.host == "billing /v1/charges"
    assert upstream.count("/v1/charges") == reached


# -- route groups ----------------------------------------------------------------------------------


def test_one_route_groups_failures_leave_another_groups_calls_alone(upstream: Upstream) -> None:
    """Issue 20.3: five 503s from POST /reports, then GET /users on the same host still goes through."""
    reports = upstream.script("/v1/reports", Reply(503, b'{"error": "overloaded"}'))
    users = upstream.script("/v1/users", Reply(200, b"[]"))
    outcomes = []
    for _ in range(8):
        with ResilientSession(retry=False) as session:
            outcomes.append(_outcome(lambda s=session: s.post(reports, json={})))
            outcomes.append(_outcome(lambda s=session: s.get(users)))
    assert outcomes[0::2] == [503] * 5 + ["refused"] * 3
    assert outcomes[1::2] == [200] * 8
    assert (upstream.count("/v1/reports"), upstream.count("/v1/users")) == (5, 8)


def test_route_groups_from_the_integrations_file(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "integrations.toml"
    path.write_text(
        f"""
        [integrations.crm]
        base_url = "{upstream.url}/v1"
        retry = false
        [integrations.crm.breaker]
        consecutive_failures = 3
        routes = {{ "/v1/reports" = "reports", "/v1/exports" = "reports" }}
        """
    )
    registry.register_config(path)
    upstream.script("/v1/reports/7", Reply(503))
    upstream.script("/v1/exports/7", Reply(200))
    upstream.script("/v1/users/7", Reply(200))
    upstream.script("/v1/orders/7", Reply(200))

    def get(path: str) -> int | str:
        with ResilientSession(integration="crm") as session:
            return _outcome(lambda: session.get(path))

    assert [get("/reports/7") for _ in range(5)] == [503] * 3 + ["refused"] * 2
    assert get("/exports/7") == "refused"  # the same group
    assert [get("/users/7"), get("/orders/7")] == [200, 200]  # every other path: group "*"
    assert upstream.count("/v1/reports/7") == 3 and upstream.count("/v1/exports/7") == 0


def test_a_refused_connection_closes_every_route_of_the_origin() -> None:
    """Host-level evidence: connections refused on one path open the origin's circuit for all of them."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    for _ in range(5):
        with ResilientSession(retry=False) as session, pytest.raises(APIConnectionError) as failed:
            session.post(base + "/v1/reports", json={})
        assert not isinstance(failed.value, CircuitOpenError)
    # Another path, another session: the origin's circuit refuses before any connection is tried.
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(8)
    listener.settimeout(0.2)
    try:
        with ResilientSession(retry=False) as session, pytest.raises(CircuitOpenError) as refused:
            session.get(base + "/v1/users")
        assert refused.value.host == f"http://127.0.0.1:{port}"
        with pytest.raises(socket.timeout):
            listener.accept()  # nothing connected
    finally:
        listener.close()


def test_a_tls_failure_closes_every_route_of_the_origin() -> None:
    """A server that answers a TLS handshake with plain text: the handshake fails on every path."""
    accepted = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = int(server.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        base = f"https://127.0.0.1:{port}"
        for path in ("/v1/reports", "/v1/users", "/v1/orders", "/v1/reports", "/v1/users"):
            with ResilientSession(retry=False) as session, pytest.raises(APIConnectionError) as failed:
                session.get(base + path)
            assert not isinstance(failed.value, CircuitOpenError)
        assert len(accepted) == 5
        with ResilientSession(retry=False) as session, pytest.raises(CircuitOpenError) as refused:
            session.get(base + "/v1/invoices")
        assert refused.value.host == f"https://127.0.0.1:{port}"
        time.sleep(0.1)
        assert len(accepted) == 5  # the refused call never connected
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


# -- processes -------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
def test_a_forked_child_starts_with_an_empty_process_store(upstream: Upstream) -> None:
    url = upstream.script("/v1/reports", Reply(503))
    for _ in range(5):
        with ResilientSession(retry=False) as session:
            session.get(url)
    with pytest.raises(CircuitOpenError):
        ResilientSession(retry=False).get(url)
    # A thread holds the store's lock while the process forks: the child must not inherit it held.
    store = default_store()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        signal.alarm(20)  # a lock inherited held would hang the child: end it instead
        code = b"?"
        try:
            code = str(ResilientSession(retry=False).get(url).status_code).encode()
        except BaseException as exc:
            code = type(exc).__name__.encode()
        finally:
            os.write(write, code)
            os._exit(0)
    release.set()
    holder.join()
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == b"503"  # the child's call went out: its store started empty, its lock free
    assert upstream.count("/v1/reports") == 6
    with pytest.raises(CircuitOpenError):
        ResilientSession(retry=False).get(url)  # the parent's circuit is still open


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def _fleet_worker(redis_url: str, prefix: str, base_url: str, results: Any) -> None:
    # What each process of a fleet runs at start-up, then a session per call.
    registry.register(
        "billing",
        base_url=base_url,
        retry=False,
        breaker=CircuitBreaker(
            consecutive_failures=4, open_wait=60, store=RedisStore(redis_url, prefix=prefix)
        ),
    )
    outcomes = []
    for _ in range(6):
        with ResilientSession(integration="billing") as session:
            outcomes.append(_outcome(lambda s=session: s.post("/charges", json={})))
    results.put(outcomes)


def test_processes_sharing_redis_share_the_integrations_circuit(
    redis_server: RedisServer, upstream: Upstream
) -> None:
    upstream.script("/v1/charges", Reply(503))
    prefix = f"fleet-{uuid.uuid4().hex}"
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    outcomes = []
    for _ in range(2):  # one process after the other: the second finds the circuit the first opened
        process = context.Process(
            target=_fleet_worker, args=(redis_server.url, prefix, upstream.url + "/v1", results)
        )
        process.start()
        outcomes.append(results.get(timeout=60))
        process.join(timeout=30)
        assert process.exitcode == 0
    assert outcomes == [[503] * 4 + ["refused"] * 2, ["refused"] * 6]
    assert upstream.count("/v1/charges") == 4


_GREEN = """
import sys
from resilient_session import CircuitOpenError, ResilientSession  # imported before patching
if sys.argv[1] == "gevent":
    from gevent import monkey; monkey.patch_all()
    import gevent
    spawn, joinall = gevent.spawn, gevent.joinall
else:
    import eventlet; eventlet.monkey_patch()
    pool = eventlet.GreenPool()
    spawn, joinall = pool.spawn, lambda threads: [t.wait() for t in threads]
outcomes = []
def call():
    with ResilientSession(retry=False) as session:  # a session per call, per greenlet
        try:
            outcomes.append(session.post(sys.argv[2], json={}).status_code)
        except CircuitOpenError:
            outcomes.append("refused")
joinall([spawn(call) for _ in range(5)])  # concurrent: all five in flight before the circuit opens
joinall([spawn(call) for _ in range(15)])
print(outcomes.count(503), outcomes.count("refused"))
"""


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_greenlets_making_sessions_per_call_share_one_circuit(upstream: Upstream, library: str) -> None:
    pytest.importorskip(library)
    url = upstream.script("/v1/charges", Reply(503))
    done = subprocess.run(
        [sys.executable, "-c", _GREEN, library, url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5", "15"]
    assert upstream.count("/v1/charges") == 5


_PYOPENSSL = """
import socket, threading
import urllib3.contrib.pyopenssl
urllib3.contrib.pyopenssl.inject_into_urllib3()
from resilient_session import APIConnectionError, CircuitOpenError, ResilientSession
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(16)
port = server.getsockname()[1]
accepted = []
def serve():
    while True:
        conn, _ = server.accept()
        accepted.append(conn)
        conn.sendall(b"HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\n\\r\\n")
        conn.close()
threading.Thread(target=serve, daemon=True).start()
failed = []
for path in ("/v1/reports", "/v1/users", "/v1/orders", "/v1/reports", "/v1/users"):
    try:
        ResilientSession(retry=False).get(f"https://127.0.0.1:{port}{path}")
    except CircuitOpenError:
        failed.append("refused")
    except APIConnectionError as error:
        failed.append(type(error).__name__)
try:
    ResilientSession(retry=False).get(f"https://127.0.0.1:{port}/v1/invoices")
except CircuitOpenError as error:
    failed.append(error.host == f"https://127.0.0.1:{port}")
print(" ".join(map(str, failed)), len(accepted))
"""


def test_a_tls_failure_through_pyopenssl_closes_every_route_of_the_origin() -> None:
    pytest.importorskip("OpenSSL")
    done = subprocess.run(
        [sys.executable, "-c", _PYOPENSSL],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["APISSLError"] * 5 + ["True", "5"]
