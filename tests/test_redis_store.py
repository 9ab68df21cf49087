"""RedisStore against a real ``redis-server`` started on a free loopback port by the fixture.

Skipped only when the binary is missing outside CI; with ``CI`` set, a missing binary is a failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient_session import (
    CircuitBreaker,
    CircuitOpenError,
    DeadlineExceededError,
    ResilientSession,
    RetryBudget,
    RetryPolicy,
)
from resilient_session.policies import CircuitState
from resilient_session.policies.budget import _DEPOSIT, _LEVEL, _WITHDRAW
from resilient_session.policies.circuit import _ACQUIRE, _RECORD, _RESET, _SNAPSHOT
from resilient_session.stores import MemoryStore, RedisStore, host_key
from resilient_session.stores.base import AtomicOp
from resilient_session.stores.redis import _op_bound
from tests.integration.upstream import Reply, Upstream

redis = pytest.importorskip("redis")

HOST = "http://127.0.0.1:8080"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_redis_server() -> str:
    """The path of ``redis-server``; skip (fail in CI) when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = (
            "redis-server is not installed (apt-get install redis-server): RedisStore needs a real server"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def redis_server_version(binary: str) -> tuple[int, ...]:
    """``redis-server --version`` as numbers (``v=7.0.15`` gives ``(7, 0, 15)``)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1 without persistence; can be stopped and restarted, and
    paused (``DEBUG SLEEP``, which Redis 7 refuses unless ``enable-debug-command`` allows it)."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = require_redis_server()
        self.port = port or _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        if redis_server_version(self.binary) >= (7,):
            command += ["--enable-debug-command", "local"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
        client.close()
        return self

    def pause(self, seconds: float) -> threading.Thread:
        """Stall the server for *seconds* (``DEBUG SLEEP``); returns once it no longer answers."""
        client = redis.Redis(port=self.port)
        client.ping()
        errors: list[BaseException] = []

        def sleep() -> None:
            try:
                client.execute_command("DEBUG", "SLEEP", seconds)
            except redis.RedisError as exc:  # e.g. DEBUG refused: reported below, not hung on
                errors.append(exc)

        sleeper = threading.Thread(target=sleep, daemon=True)
        sleeper.start()
        probe = redis.Redis(
            port=self.port,
            socket_timeout=0.05,
            socket_connect_timeout=0.05,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),  # a timeout must surface, not be retried
        )
        give_up = time.monotonic() + seconds / 2
        while not errors and time.monotonic() < give_up:
            try:
                probe.ping()
            except redis.TimeoutError:
                return sleeper
            time.sleep(0.005)
        raise RuntimeError(f"redis-server did not pause: {errors or 'it kept answering'}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def store(redis_server: RedisServer) -> RedisStore:
    return RedisStore(redis_server.url, prefix=f"test-{uuid.uuid4().hex}")


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the Lua scripts do exactly what the Python ops do ---------------------------------------------------

BREAKER_OPS = st.one_of(
    st.tuples(st.just("acquire")),
    st.tuples(st.just("record"), st.sampled_from([0.0, 1.0, 2.0]), st.booleans()),
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=25.0)),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("reset")),
    st.tuples(st.just("withdraw"), st.sampled_from([5.0, 10.0])),
    st.tuples(st.just("deposit"), st.sampled_from([1.0, 5.0, 10.0])),
    st.tuples(st.just("level")),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(BREAKER_OPS, max_size=60), consecutive=st.sampled_from([0.0, 3.0]))
def test_lua_and_python_ops_agree(
    redis_server: RedisServer, ops: list[tuple[object, ...]], consecutive: float
) -> None:
    clock = Clock()
    memory = MemoryStore(clock=clock)
    # Parity, not speed, is checked here: a generous op_timeout, so that a loaded machine (the default is
    # 0.1 s) cannot make the store degrade to its local fallback half-way and compare that with itself.
    shared = RedisStore(redis_server.url, prefix=f"parity-{uuid.uuid4().hex}", clock=clock, op_timeout=5.0)
    # window 6, minimum 4, rate 0.5, wait 2 s doubling to 9 s, 2 probes, 5 s lease
    record_args = (6.0, 4.0, 0.5, consecutive, 2.0, 2.0, 9.0, 2.0)
    generation = 0.0
    for op in ops:
        kind = op[0]
        if kind == "advance":
            clock.now += float(op[1])  # type: ignore[arg-type]
            continue
        call: tuple[AtomicOp, str, tuple[float, ...]]
        if kind == "acquire":
            call = (_ACQUIRE, "breaker:h", (2.0, 5.0))
        elif kind == "record":
            stale = bool(op[2])
            outcome = float(op[1])  # type: ignore[arg-type]
            call = (_RECORD, "breaker:h", (generation - 1 if stale else generation, outcome, *record_args))
        elif kind == "snapshot":
            call = (_SNAPSHOT, "breaker:h", ())
        elif kind == "reset":
            call = (_RESET, "breaker:h", ())
        elif kind == "withdraw":
            call = (_WITHDRAW, "budget:h", (30.0, float(op[1])))  # type: ignore[arg-type]
        elif kind == "deposit":
            call = (_DEPOSIT, "budget:h", (30.0, float(op[1])))  # type: ignore[arg-type]
        else:
            call = (_LEVEL, "budget:h", (30.0,))
        expected = memory.run(*call)
        actual = shared.run(*call)
        assert actual == expected, (op, expected, actual)
        if kind == "acquire":
            generation = expected[1]
    assert not shared.degraded


# -- atomicity ------------------------------------------------------------------------------------------


def test_no_budget_update_is_lost_between_clients(redis_server: RedisServer) -> None:
    prefix = f"race-{uuid.uuid4().hex}"
    # Four stores with their own connection pools stand for four processes; two threads each.
    stores = [RedisStore(redis_server.url, prefix=prefix) for _ in range(4)]
    budget = RetryBudget(capacity=500, retry_cost=1)
    granted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(store: RedisStore) -> None:
        mine = budget.new(store=store)
        start.wait()
        count = sum(mine.try_retry(HOST) for _ in range(100))
        with lock:
            granted.append(count)

    threads = [threading.Thread(target=worker, args=(stores[i % 4],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 500
    assert budget.new(store=stores[0]).available(HOST) == 0


def test_no_breaker_outcome_is_lost_between_clients(redis_server: RedisServer) -> None:
    prefix = f"race-{uuid.uuid4().hex}"
    stores = [RedisStore(redis_server.url, prefix=prefix) for _ in range(4)]
    policy = CircuitBreaker(
        consecutive_failures=None, failure_rate_threshold=1.0, window_size=1000, minimum_calls=1000
    )
    start = threading.Barrier(8)

    def worker(store: RedisStore) -> None:
        breaker = policy.new(store=store)
        start.wait()
        for i in range(50):
            permit = breaker.acquire(HOST)
            breaker.record(permit, error=requests.ConnectionError() if i % 5 == 0 else None)

    threads = [threading.Thread(target=worker, args=(stores[i % 4],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = policy.new(store=stores[0]).state(HOST)
    assert (snapshot.calls, snapshot.failures) == (400, 80)


def test_a_circuit_opened_by_one_client_is_open_for_another(redis_server: RedisServer) -> None:
    prefix = f"share-{uuid.uuid4().hex}"
    first = CircuitBreaker(consecutive_failures=2, store=RedisStore(redis_server.url, prefix=prefix))
    second = first.new(store=RedisStore(redis_server.url, prefix=prefix))
    for _ in range(2):
        first.record(first.acquire(HOST), error=requests.ConnectionError())
    with pytest.raises(CircuitOpenError) as caught:
        second.acquire(HOST)
    assert 4.0 < caught.value.retry_in <= 5.0
    assert second.store.hints  # now known locally: the next refusals skip Redis
    assert second.state(HOST).state is CircuitState.OPEN
    other_prefix = first.new(store=RedisStore(redis_server.url, prefix=prefix + "-other"))
    assert other_prefix.acquire(HOST)


# -- keys, TTLs, scripts ------------------------------------------------------------------------------------


def test_keys_are_prefixed_and_expire(redis_server: RedisServer, store: RedisStore) -> None:
    client = redis.Redis.from_url(redis_server.url)
    budget = RetryBudget(store=store)
    breaker = CircuitBreaker(store=store)
    budget.try_retry(HOST)
    breaker.record(breaker.acquire(HOST), response=None)
    budget_ttl = client.pttl(f"{store.prefix}:budget:{HOST}")
    breaker_ttl = client.pttl(f"{store.prefix}:breaker:{HOST}")
    assert 0 < budget_ttl <= store.ttl * 1000
    assert 0 < breaker_ttl <= store.ttl * 1000


def test_a_full_budget_leaves_no_key(redis_server: RedisServer, store: RedisStore) -> None:
    client = redis.Redis.from_url(redis_server.url)
    budget = RetryBudget(capacity=10, store=store)
    budget.try_retry(HOST)
    budget.record_success(HOST, last_retry_cost=5)
    assert budget.available(HOST) == 10
    assert client.exists(f"{store.prefix}:budget:{HOST}") == 0


def test_scripts_are_reloaded_when_the_server_forgets_them(
    redis_server: RedisServer, store: RedisStore
) -> None:
    budget = RetryBudget(store=store)
    budget.try_retry(HOST)
    redis.Redis.from_url(redis_server.url).script_flush()
    assert budget.try_retry(HOST)
    assert budget.available(HOST) == 490
    assert not store.degraded


# -- when Redis cannot be used ----------------------------------------------------------------------------


def test_unreachable_redis_falls_back_to_local_state_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()  # nothing listens there
    store = RedisStore(f"redis://127.0.0.1:{port}/0", retry_interval=0.0)
    breaker = CircuitBreaker(consecutive_failures=3, store=store)
    with caplog.at_level(logging.DEBUG, logger="resilient_session"):
        for _ in range(3):
            breaker.record(breaker.acquire(HOST), error=requests.ConnectionError())
        with pytest.raises(CircuitOpenError):
            breaker.acquire(HOST)  # the breaker still protects this process
    assert store.degraded
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "cannot be used" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert f"127.0.0.1:{port}/0" in warnings[0].getMessage()


def test_outage_and_recovery_of_redis(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer().start()
    try:
        store = RedisStore(server.url, retry_interval=0.0)
        budget = RetryBudget(capacity=20, store=store)
        assert budget.try_retry(HOST)
        server.stop()
        with caplog.at_level(logging.INFO, logger="resilient_session"):
            assert budget.available(HOST) == 20  # local fallback: a fresh bucket
            assert budget.try_retry(HOST)
            assert store.degraded
            server.start()
            assert budget.available(HOST) == 20  # the restarted server kept nothing either
            assert not store.degraded
        # mypy keeps store.degraded narrowed to True across server.start(), so it takes this for unreachable.
        messages = [r.getMessage() for r in caplog.records if "Redis at" in r.getMessage()]  # type: ignore[unreachable]
        assert len(messages) == 2
        assert "cannot be used" in messages[0]
        assert "answers again" in messages[1]
    finally:
        server.stop()


def test_recovery_drops_what_was_recorded_locally_meanwhile() -> None:
    server = RedisServer().start()
    try:
        store = RedisStore(server.url, retry_interval=0.0)
        breaker = CircuitBreaker(consecutive_failures=1, store=store)
        budget = RetryBudget(capacity=20, store=store)
        server.stop()
        breaker.record(breaker.acquire(HOST), error=requests.ConnectionError())
        with pytest.raises(CircuitOpenError):
            breaker.acquire(HOST)  # opened in the local fallback
        server.start()
        assert budget.available(HOST) == 20  # the first answer from Redis ends the fallback
        assert not store.degraded and len(store.fallback) == 0
        assert not breaker.acquire(HOST).probe  # Redis's state (closed) rules, not the local note
    finally:
        server.stop()


def test_a_down_redis_is_not_asked_again_before_the_retry_interval() -> None:
    port = _free_port()
    store = RedisStore(f"redis://127.0.0.1:{port}/0", retry_interval=3600.0)
    budget = RetryBudget(store=store)
    budget.try_retry(HOST)
    started = time.perf_counter()
    for _ in range(200):
        budget.try_retry(HOST)
    assert time.perf_counter() - started < 0.5  # no connection attempts: the fallback answers


# -- when Redis is slow or hung: a store op costs a call a small share of its time -------------------------


@contextlib.contextmanager
def silent_peer() -> Iterator[tuple[str, list[socket.socket]]]:
    """A "Redis" on 127.0.0.1 that accepts connections and never answers: its URL and what it accepted."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0", accepted
    finally:
        server.close()
        for sock in accepted:
            sock.close()


@contextlib.contextmanager
def unconnectable_peer() -> Iterator[str]:
    """A "Redis" on 127.0.0.1 whose accept queue is full: a connect to it never completes."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = server.getsockname()[1]
    queued: list[socket.socket] = []
    try:
        while True:  # fill the queue until a connect hangs (Linux queues backlog + 1)
            sock = socket.socket()
            sock.settimeout(0.2)
            try:
                sock.connect(("127.0.0.1", port))
            except OSError:
                sock.close()
                break
            queued.append(sock)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        for sock in queued:
            sock.close()


def _fail_open_session(store: RedisStore, deadline: float | None) -> ResilientSession:
    return ResilientSession(
        breaker=CircuitBreaker(store=store), budget=RetryBudget(store=store), deadline=deadline
    )


def _store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "cannot be used" in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("remaining", "bound"),
    [
        (None, 0.1),
        (5.0, 0.1),
        (1.0, 0.1),
        (0.3, 0.03),
        (0.03, 0.005),
        (0.004, 0.004),
        (0.0, 0.005),
        (-1.0, 0.005),
    ],
)
def test_an_op_is_bounded_by_op_timeout_a_tenth_of_the_time_left_5_ms_and_the_deadline(
    remaining: float | None, bound: float
) -> None:
    # Past the deadline (the breaker told of the failure, a slot given back): 5 ms.
    assert _op_bound(0.1, remaining) == pytest.approx(bound)
    assert _op_bound(0.01, 5.0) == 0.01  # op_timeout caps the share


@pytest.mark.parametrize("shape", ["silent", "unconnectable"])
def test_a_hung_redis_costs_a_call_a_tenth_of_its_deadline_then_the_store_degrades(
    upstream: Upstream, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = upstream.script("/ok", Reply())
    with contextlib.ExitStack() as stack:
        if shape == "silent":
            redis_url, accepted = stack.enter_context(silent_peer())
        else:
            redis_url, accepted = stack.enter_context(unconnectable_peer()), []
        store = RedisStore(redis_url)
        session = _fail_open_session(store, deadline=0.3)
        with caplog.at_level(logging.WARNING, logger="resilient_session"):
            started = time.monotonic()
            response = session.get(url)
            elapsed = time.monotonic() - started
            assert response.status_code == 200 and upstream.count("/ok") == 1
            # one op waited 0.03 s (a tenth of 0.3 s), the others were answered locally
            assert 0.025 <= elapsed < 0.15
            assert store.degraded
            assert len(_store_warnings(caplog)) == 1 and "TimeoutError" in _store_warnings(caplog)[0]
            # one connection: after the first op ran out of time, no other op of the call asked Redis
            assert len(accepted) == (1 if shape == "silent" else 0)
            # while degraded, Redis is not asked again before retry_interval
            connections = len(accepted)
            started = time.monotonic()
            assert session.get(url).status_code == 200
            assert time.monotonic() - started < 0.1
            assert len(accepted) == connections
        assert len(_store_warnings(caplog)) == 1


def test_a_paused_redis_costs_a_call_a_tenth_of_its_deadline_and_is_used_again_after_it_wakes(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    url = upstream.script("/ok", Reply())
    server = RedisServer().start()
    try:
        store = RedisStore(server.url, retry_interval=0.2, prefix=f"pause-{uuid.uuid4().hex}")
        session = _fail_open_session(store, deadline=0.3)
        assert (session.get(url).status_code, store.degraded) == (200, False)  # connected, healthy
        sleeper = server.pause(1.0)
        with caplog.at_level(logging.INFO, logger="resilient_session"):
            started = time.monotonic()
            response = session.get(url)
            elapsed = time.monotonic() - started
            assert response.status_code == 200
            assert 0.025 <= elapsed < 0.15
            assert store.degraded
            sleeper.join(timeout=5)
            time.sleep(0.25)  # past retry_interval: the next op asks Redis again
            assert (session.get(url).status_code, store.degraded) == (200, False)
        messages = [r.getMessage() for r in caplog.records if "Redis at" in r.getMessage()]
        assert len(messages) == 2
        assert "cannot be used (TimeoutError" in messages[0] and "answers again" in messages[1]
        assert upstream.count("/ok") == 3
    finally:
        server.stop()


def test_without_a_deadline_an_op_waits_op_timeout_at_most() -> None:
    with silent_peer() as (redis_url, _):
        store = RedisStore(redis_url)
        budget = RetryBudget(store=store)
        started = time.monotonic()
        assert budget.try_retry(HOST)  # answered by the local fallback: a full bucket
        elapsed = time.monotonic() - started
    assert 0.095 <= elapsed < 0.4  # the default op_timeout, 0.1 s
    assert store.degraded


@contextlib.contextmanager
def dripping_peer() -> Iterator[str]:
    """A "Redis" on 127.0.0.1 that answers any command with a bulk string one byte every 10 ms, forever:
    no single read waits long, the answer never ends."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.recv(65536)
            conn.sendall(b"$1000000\r\n")
            while not stop.wait(0.01):
                conn.sendall(b"x")

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        stop.set()
        server.close()


def test_the_bound_holds_for_the_whole_op_not_for_each_read(upstream: Upstream) -> None:
    url = upstream.script("/ok", Reply())
    with dripping_peer() as redis_url:
        store = RedisStore(redis_url)
        started = time.monotonic()
        assert _fail_open_session(store, deadline=0.3).get(url).status_code == 200
        elapsed = time.monotonic() - started
    assert elapsed < 0.15
    assert store.degraded


def test_with_under_5_ms_left_the_deadline_cuts_the_op_short_and_redis_is_not_marked_down() -> None:
    from resilient_session._call import CallState, active, clock

    with silent_peer() as (redis_url, accepted):
        store = RedisStore(redis_url)
        budget = RetryBudget(store=store)
        with active(CallState.begin("GET", HOST, deadline_at=clock() + 0.004)):
            started = time.monotonic()
            assert budget.try_retry(HOST)  # answered locally
            elapsed = time.monotonic() - started
        assert accepted  # Redis was asked
    assert elapsed < 0.05
    assert not store.degraded  # the deadline, not Redis, ended the op


def test_an_op_cut_short_may_still_run_on_the_server_when_it_wakes() -> None:
    server = RedisServer().start()
    try:
        store = RedisStore(server.url, op_timeout=0.05, prefix=f"late-{uuid.uuid4().hex}")
        lua = "redis.call('INCR', KEYS[1])\nreturn {num(1)}"
        count = AtomicOp("count", lambda state, args, now: (state, (1.0,)), lua)
        assert store.run(count, "n", ()) == (1.0,)
        sleeper = server.pause(0.5)
        assert store.run(count, "n", ()) == (1.0,)  # from the local fallback
        assert store.degraded
        sleeper.join(timeout=5)
        assert redis.Redis(port=server.port).get(f"{store.prefix}:n") == b"2"  # the late command ran
    finally:
        server.stop()


def test_calls_ended_by_their_deadline_open_the_circuit_for_another_process(
    redis_server: RedisServer, upstream: Upstream
) -> None:
    # Told once the deadline has passed, the failure still reaches Redis (5 ms for the op), not only
    # this process's fallback: another process's session finds the circuit open.
    url = upstream.script("/slow", Reply(delay=2.0))
    prefix = f"test-{uuid.uuid4().hex}"
    mine, theirs = RedisStore(redis_server.url, prefix=prefix), RedisStore(redis_server.url, prefix=prefix)
    session = ResilientSession(
        retry=False, breaker=CircuitBreaker(consecutive_failures=2, store=mine), budget=False, deadline=0.2
    )
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            session.get(url)
        assert time.monotonic() - started < 0.2 + 0.05
    other = ResilientSession(
        retry=False, breaker=CircuitBreaker(consecutive_failures=2, store=theirs), budget=False
    )
    with pytest.raises(CircuitOpenError):
        other.get(url)
    assert upstream.count("/slow") == 2
    assert not mine.degraded
    session.close()
    other.close()


def test_op_timeout_caps_the_share_of_a_long_deadline(upstream: Upstream) -> None:
    url = upstream.script("/ok", Reply())
    with silent_peer() as (redis_url, _):
        store = RedisStore(redis_url, op_timeout=0.05)
        started = time.monotonic()
        assert _fail_open_session(store, deadline=10.0).get(url).status_code == 200
        elapsed = time.monotonic() - started
    assert 0.045 <= elapsed < 0.5  # 0.05 s, not a tenth of 10 s
    assert store.degraded


def test_a_long_op_timeout_still_takes_only_a_tenth_of_the_time_left(upstream: Upstream) -> None:
    url = upstream.script("/ok", Reply())
    with silent_peer() as (redis_url, _):
        store = RedisStore(redis_url, op_timeout=30.0)
        started = time.monotonic()
        assert _fail_open_session(store, deadline=1.0).get(url).status_code == 200
        elapsed = time.monotonic() - started
    assert 0.095 <= elapsed < 0.5
    assert store.degraded


def test_a_healthy_redis_answers_within_a_short_deadline(
    redis_server: RedisServer, upstream: Upstream
) -> None:
    url = upstream.script("/ok", Reply())
    store = RedisStore(redis_server.url, prefix=f"short-{uuid.uuid4().hex}")
    session = _fail_open_session(store, deadline=0.1)  # 10 ms per op: plenty for loopback
    for _ in range(20):
        assert session.get(url).status_code == 200
    assert not store.degraded
    assert redis.Redis.from_url(redis_server.url).keys(f"{store.prefix}:*")  # the state is in Redis


CHILD = """
import json, os, sys, time
import resilient_session  # imported first: patching comes after, as in applications that patch late
from resilient_session import CircuitBreaker, RetryBudget
from resilient_session._call import CallState, active, clock
from resilient_session.stores import RedisStore

mode, redis_url, host = sys.argv[1:]
if mode == "gevent":
    from gevent import monkey
    monkey.patch_all()
elif mode == "eventlet":
    import eventlet
    eventlet.monkey_patch()
store = RedisStore(redis_url)
breaker, budget = CircuitBreaker(store=store), RetryBudget(store=store)

def call():
    # what a call with deadline=0.3 asks the store: leave to go, the outcome, a retry
    with active(CallState.begin("GET", host, deadline_at=clock() + 0.3)):
        started = time.monotonic()
        breaker.record(breaker.acquire(host))
        granted = budget.try_retry(host)
        elapsed = time.monotonic() - started
    return {"granted": granted, "elapsed": elapsed, "degraded": store.degraded}

if mode == "fork":
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, json.dumps(call()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(os.read(read, 4096).decode())
else:
    print(json.dumps(call()))
"""


@pytest.mark.parametrize("mode", ["gevent", "eventlet", "fork"])
def test_a_hung_redis_costs_a_tenth_of_the_deadline_under_gevent_eventlet_and_after_fork(mode: str) -> None:
    if mode != "fork":
        pytest.importorskip(mode)
    with silent_peer() as (redis_url, accepted):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, mode, redis_url, HOST],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert len(accepted) == 1  # the child asked the silent Redis once, then answered locally
    assert result == {"granted": True, "elapsed": result["elapsed"], "degraded": True}
    assert 0.025 <= result["elapsed"] < 0.15


@pytest.mark.parametrize("value", [0, -1, 0.0, math.nan, math.inf, "0.1", True, None])
def test_op_timeout_must_be_a_positive_finite_number(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^op_timeout must be a positive finite number"):
        RedisStore("redis://127.0.0.1:6379/0", op_timeout=value)


# -- the object itself --------------------------------------------------------------------------------------


def test_repr_never_shows_the_password() -> None:
    store = RedisStore("redis://:hunter2@127.0.0.1:6379/3")
    assert "hunter2" not in repr(store)
    assert repr(store) == "RedisStore('127.0.0.1:6379/3', prefix='resilient_session', ttl=86400.0)"


def test_pickling_works_for_stores_built_from_a_url(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, prefix="p", ttl=99.0, op_timeout=0.25)
    copy = pickle.loads(pickle.dumps(store))
    assert (copy.prefix, copy.ttl, copy.address, copy.op_timeout) == ("p", 99.0, store.address, 0.25)
    with pytest.raises(TypeError, match="from a URL"):
        pickle.dumps(RedisStore(redis.Redis.from_url(redis_server.url)))


def test_a_store_pickled_before_op_timeout_existed_loads_with_the_default(redis_server: RedisServer) -> None:
    from resilient_session.stores.redis import _rebuild

    class Before:  # what RedisStore.__reduce__ gave before op_timeout: five arguments
        def __reduce__(self) -> tuple[Any, ...]:
            return (_rebuild, (redis_server.url, "p", 99.0, 5.0, time.time))

    copy = pickle.loads(pickle.dumps(Before()))
    assert isinstance(copy, RedisStore)
    assert (copy.prefix, copy.ttl, copy.retry_interval, copy.op_timeout) == ("p", 99.0, 5.0, 0.1)


def test_invalid_settings_are_refused(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError):
        RedisStore(redis_server.url, ttl=0)


# -- garbage in the keys: no call fails because of it --------------------------------------------------

GARBAGE = ["nan", "-nan", "inf", "-inf", "1e400", "-1e400", "abc", "", "0x", "1.5e", "  "]
BREAKER_FIELDS = ["st", "gen", "nf", "cf", "till", "trips", "pin", "pok", "pat"]


def _session_on(store: RedisStore, **breaker: Any) -> ResilientSession:
    return ResilientSession(
        retry=False,
        breaker=CircuitBreaker(store=store, **breaker),
        budget=RetryBudget(store=store),
    )


def _numbers_in(client: Any, key: str) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in client.hgetall(key).items() if k != b"win"}


@pytest.mark.parametrize("field", BREAKER_FIELDS)
@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_in_a_breaker_field_never_fails_a_call(
    redis_server: RedisServer, upstream: Upstream, field: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = upstream.script("/ok", Reply())
    # The state's repair is tested here, not the op's bound: a collector pause of this large test
    # process (100 ms and more) must not read as Redis being down.
    store = RedisStore(redis_server.url, prefix=f"garbage-{uuid.uuid4().hex}", op_timeout=5.0)
    client = redis.Redis.from_url(redis_server.url)
    key = f"{store.prefix}:breaker:{host_key(url)}"
    client.hset(key, mapping={"st": "0", "gen": "3", "win": "0101", "nf": "2", "cf": "0", field: value})
    with caplog.at_level(logging.DEBUG, logger="resilient_session"), _session_on(store) as session:
        for _ in range(3):
            assert session.get(url).status_code == 200
        snapshot = session.breaker.state(host_key(url))  # type: ignore[union-attr]
    assert snapshot.state is CircuitState.CLOSED
    assert all(math.isfinite(v) for v in (snapshot.retry_in, snapshot.failure_rate))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "corrupt" in r.getMessage()]
    assert len(warnings) == 1  # logged once, however many calls meet the key
    assert not store.degraded  # Redis itself is fine: the shared state is used, repaired
    assert all(math.isfinite(v) for v in _numbers_in(client, key).values())


@pytest.mark.parametrize("till", ["inf", "1e400", "1e300", "nan"])
def test_an_open_circuit_with_a_garbage_till_does_not_stay_open(
    redis_server: RedisServer, upstream: Upstream, till: str
) -> None:
    url = upstream.script("/ok", Reply())
    store = RedisStore(redis_server.url, prefix=f"till-{uuid.uuid4().hex}")
    client = redis.Redis.from_url(redis_server.url)
    key = f"{store.prefix}:breaker:{host_key(url)}"
    client.hset(key, mapping={"st": "1", "gen": "7", "till": till, "trips": "1"})  # no expiry either
    with _session_on(store) as session:
        assert session.get(url).status_code == 200
        assert session.breaker.state(host_key(url)).state is CircuitState.CLOSED  # type: ignore[union-attr]
    assert float(client.hget(key, "till") or 0) == 0.0
    assert 0 < client.pttl(key) <= store.ttl * 1000


def test_a_circuit_open_until_far_past_the_ttl_is_corrupt(redis_server: RedisServer) -> None:
    clock = Clock()
    store = RedisStore(redis_server.url, prefix=f"far-{uuid.uuid4().hex}", clock=clock, ttl=3600)
    client = redis.Redis.from_url(redis_server.url)
    key = f"{store.prefix}:breaker:{HOST}"
    # Finite but an hour and a minute away: no open wait these scripts write outlives the ttl.
    client.hset(key, mapping={"st": "1", "gen": "1", "till": repr(clock.now + 3660), "trips": "1"})
    breaker = CircuitBreaker(store=store)
    assert breaker.acquire(HOST).generation >= 0
    # A real open wait within the ttl is kept.
    client.hset(key, mapping={"st": "1", "gen": "1", "till": repr(clock.now + 30), "trips": "1"})
    with pytest.raises(CircuitOpenError) as caught:
        breaker.new(store=RedisStore(redis_server.url, prefix=store.prefix, clock=clock)).acquire(HOST)
    assert caught.value.retry_in == pytest.approx(30, abs=1)


@pytest.mark.parametrize("value", [*GARBAGE, "-5"])
def test_garbage_in_a_budget_key_never_fails_a_call(
    redis_server: RedisServer, upstream: Upstream, value: str
) -> None:
    url = upstream.script("/flaky", Reply(status=503), Reply())
    store = RedisStore(redis_server.url, prefix=f"budget-{uuid.uuid4().hex}")
    client = redis.Redis.from_url(redis_server.url)
    key = f"{store.prefix}:budget:{host_key(url)}"
    client.set(key, value)
    with ResilientSession(
        retry=RetryPolicy(total=2, backoff_factor=0), budget=RetryBudget(store=store), breaker=False
    ) as session:
        response = session.get(url)
        assert response.status_code == 200  # the retry was paid for from a full (repaired) budget
        level = session.budget.available(host_key(url))  # type: ignore[union-attr]
    assert math.isfinite(level) and 0 < level <= RetryBudget().capacity
    stored = client.get(key)
    assert stored is None or math.isfinite(float(stored))


def test_a_non_finite_answer_from_a_script_is_answered_locally(
    redis_server: RedisServer, store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    # Defence in depth behind the scripts' checks: an op whose Lua answers garbage falls back.
    op = AtomicOp("garbage", lambda state, args, now: (state, (1.0,)), "return {'nan', 'inf'}")
    with caplog.at_level(logging.WARNING, logger="resilient_session"):
        assert store.run(op, "k", ()) == (1.0,)
    assert any("corrupt" in r.getMessage() for r in caplog.records)
