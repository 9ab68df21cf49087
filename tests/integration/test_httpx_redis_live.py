"""The async client with policies in Redis (breaker, budget, rate limit): the same keys and scripts as the
sync session, no worker thread, and a stalled Redis never stalls the event loop."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest
import redis

import resilient_session as rs
from resilient_session import CircuitBreaker, RetryBudget, RetryPolicy
from resilient_session.errors import QuotaExceededError
from resilient_session.httpx import (
    AsyncResilientClient,
    HTTPXCircuitOpen,
    HTTPXDeadlineExceeded,
    HTTPXQuotaExceeded,
)
from resilient_session.policies import CircuitState, RateLimit
from resilient_session.policies.budget import _WITHDRAW
from resilient_session.policies.circuit import _ACQUIRE, _RECORD
from resilient_session.stores import RedisStore
from tests.integration.rawserver import RawServer, answer, drip_body
from tests.test_redis_store import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def server() -> Iterator[RawServer]:
    with RawServer() as srv:
        yield srv


async def test_a_sync_session_and_an_async_client_share_a_circuit_in_redis(
    redis_server: RedisServer, server: RawServer
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    # Two stores, two clients: as two processes of a fleet would see it.
    sync_store = RedisStore(redis_server.url, prefix=prefix)
    async_store = RedisStore(redis_server.url, prefix=prefix)
    server.script(answer(503))
    session = rs.ResilientSession(
        retry=False, breaker=CircuitBreaker(consecutive_failures=2, store=sync_store), budget=False
    )
    for _ in range(2):
        assert session.get(server.url + "/x").status_code == 503
    session.close()
    breaker = CircuitBreaker(consecutive_failures=2, store=async_store)
    async with AsyncResilientClient(retry=False, breaker=breaker, budget=False) as c:
        assert not c.resilient_transport.policies.local
        with pytest.raises(HTTPXCircuitOpen):
            await c.get(server.url + "/x")
    assert server.count == 2
    assert not async_store.degraded


async def test_calls_ended_by_their_deadline_are_counted_in_redis_before_the_caller_goes_on(
    redis_server: RedisServer, server: RawServer
) -> None:
    # The caller settles the hop itself at the deadline (its work still closing the connection): the
    # record reaches Redis before the caller's next call asks the circuit.
    prefix = f"test-{uuid.uuid4().hex}"
    store = RedisStore(redis_server.url, prefix=prefix)
    server.script(drip_body(0.05))
    breaker = CircuitBreaker(consecutive_failures=2, store=store, routes=False)
    async with AsyncResilientClient(retry=False, breaker=breaker, budget=False, deadline=0.2) as c:
        for _ in range(2):
            with pytest.raises(HTTPXDeadlineExceeded):
                await c.get(server.url + "/drip")
        view = CircuitBreaker(store=RedisStore(redis_server.url, prefix=prefix), routes=False)
        snapshot = await anyio.to_thread.run_sync(view.state, view.key_for(server.url))
        assert snapshot.state is CircuitState.OPEN and snapshot.trips == 1
        with pytest.raises(HTTPXCircuitOpen):
            await c.get(server.url + "/drip")
    assert server.count == 2
    assert not store.degraded


async def test_a_stalled_redis_does_not_stall_the_event_loop(
    redis_server: RedisServer, server: RawServer
) -> None:
    store = RedisStore(redis_server.url, prefix=f"test-{uuid.uuid4().hex}", op_timeout=0.1)
    server.script(answer(503), answer(200))
    breaker, budget = CircuitBreaker(store=store), RetryBudget(store=store)
    async with AsyncResilientClient(retry=1, breaker=breaker, budget=budget) as c:
        await c.get(server.url + "/warm")  # connections to Redis and upstream made before the stall
        server.script(answer(503), answer(200))
        sleeper = redis_server.pause(1.0)
        took, gaps = await _one_call_while_the_loop_ticks(c, server.url + "/x")
        sleeper.join()
    # Each store op waits at most op_timeout, then the store falls back to memory (one op, not each).
    assert took < 1.0
    assert gaps and max(gaps) < 0.08  # the loop kept running while Redis was asked
    assert store.degraded


# -- the store's async ops (redis.asyncio): no worker thread, the same keys and scripts ---------------


@pytest.fixture
def no_worker_threads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every hand-off to anyio's worker threads, recorded (and run, so a failure shows as a count)."""
    handed: list[object] = []
    original = anyio.to_thread.run_sync

    async def recorded(func: Any, *args: Any, **kwargs: Any) -> Any:
        handed.append(func)
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", recorded)
    return handed


async def test_the_async_client_asks_redis_without_a_thread_and_the_same_keys_and_scripts(
    redis_server: RedisServer, server: RawServer, no_worker_threads: list[object]
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    async_store = RedisStore(redis_server.url, prefix=prefix)
    raw = redis.Redis.from_url(redis_server.url)
    raw.script_flush()
    # The same failures for the async client and for a requests session (on keys of their own).
    server.script(answer(503), answer(503), answer(503), answer(503))
    breaker, budget = CircuitBreaker(store=async_store), RetryBudget(store=async_store)
    async with AsyncResilientClient(retry=1, breaker=breaker, budget=budget) as c:
        assert c.resilient_transport.policies.awaitable
        assert (await c.get(server.url + "/x")).status_code == 503  # retries out: the last answer
    assert server.count == 2  # the first attempt and one retry
    assert no_worker_threads == []
    sync_twin = RedisStore(redis_server.url, prefix=f"{prefix}-sync")
    session = rs.ResilientSession(
        retry=1, breaker=CircuitBreaker(store=sync_twin), budget=RetryBudget(store=sync_twin)
    )
    assert session.get(server.url + "/x").status_code == 503
    session.close()
    assert server.count == 4
    # The keys a requests session uses, holding the state a requests session leaves.
    origin = f"http://127.0.0.1:{server.port}"
    assert raw.exists(f"{prefix}:breaker:{origin}", f"{prefix}:budget:{origin}") == 2
    sync_view = RedisStore(redis_server.url, prefix=prefix)
    level = RetryBudget(store=sync_view).available(origin)
    assert level == RetryBudget(store=sync_twin).available(origin) < RetryBudget().capacity
    assert CircuitBreaker(store=sync_view).state(origin) == CircuitBreaker(store=sync_twin).state(origin)
    # Scripts loaded under the SHAs the sync client runs (the same Lua text).
    shas = [sync_view._script(op).sha for op in (_ACQUIRE, _RECORD, _WITHDRAW)]
    assert raw.script_exists(*shas) == [True, True, True]
    await async_store.aclose()
    raw.close()


async def test_failures_seen_by_the_async_client_open_the_circuit_for_a_sync_session(
    redis_server: RedisServer, server: RawServer, no_worker_threads: list[object]
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    async_store, sync_store = (
        RedisStore(redis_server.url, prefix=prefix),
        RedisStore(redis_server.url, prefix=prefix),
    )
    server.script(answer(503), answer(503), answer(200))
    breaker = CircuitBreaker(consecutive_failures=2, store=async_store)
    async with AsyncResilientClient(retry=False, breaker=breaker, budget=False) as c:
        for _ in range(2):
            assert (await c.get(server.url + "/x")).status_code == 503
    assert no_worker_threads == []
    session = rs.ResilientSession(
        retry=False, breaker=CircuitBreaker(consecutive_failures=2, store=sync_store), budget=False
    )
    with pytest.raises(rs.CircuitOpenError):
        session.get(server.url + "/x")
    session.close()
    assert server.count == 2  # the sync session sent nothing
    await async_store.aclose()


class _BlackHole:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers (a Redis that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


async def test_a_redis_that_never_answers_fails_open_within_the_op_timeout_while_the_loop_runs(
    server: RawServer, no_worker_threads: list[object]
) -> None:
    hole = _BlackHole()
    try:
        store = RedisStore(f"redis://127.0.0.1:{hole.port}/0", prefix="hole", op_timeout=0.1)
        server.script(answer(200))
        # Built first: loading the TLS context of a new client takes the loop tens of milliseconds.
        client = AsyncResilientClient(
            retry=False, breaker=CircuitBreaker(store=store), budget=RetryBudget(store=store)
        )
        async with client:
            took, gaps = await _one_call_while_the_loop_ticks(client, server.url + "/x")
        assert hole.accepted  # Redis was asked: the op went out, and no answer came
    finally:
        hole.close()
    # The first op waited its op_timeout (0.1 s) and the store fell back to memory for the rest.
    assert 0.1 <= took < 0.4
    assert store.degraded
    assert len(gaps) > 15 and max(gaps) < 0.05  # the loop kept running while Redis did not answer
    assert no_worker_threads == []


async def _one_call_while_the_loop_ticks(client: AsyncResilientClient, url: str) -> tuple[float, list[float]]:
    """One GET of *url* (answered 200) while another task ticks every 5 ms: how long the call took and
    the gaps between the ticks (a blocked loop shows as a long gap)."""
    ticks: list[float] = []
    took = 0.0

    async def call() -> None:
        nonlocal took
        await anyio.sleep(0.02)  # the ticks run first
        started = time.monotonic()
        assert (await client.get(url)).status_code == 200
        took = time.monotonic() - started
        tg.cancel_scope.cancel()

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        tg.start_soon(call)
    return took, [b - a for a, b in itertools.pairwise(ticks)]


def test_each_event_loop_and_each_forked_child_gets_its_own_async_client(
    redis_server: RedisServer, server: RawServer
) -> None:
    store = RedisStore(redis_server.url, prefix=f"test-{uuid.uuid4().hex}")
    server.script(*[answer(200)] * 4)

    async def one_call() -> int:
        async with AsyncResilientClient(retry=False, breaker=CircuitBreaker(store=store), budget=False) as c:
            return (await c.get(server.url + "/x")).status_code

    # Two loops one after the other: a redis.asyncio connection of the first cannot serve the second.
    assert asyncio.run(one_call()) == 200
    assert asyncio.run(one_call()) == 200
    assert not store.degraded
    if not hasattr(os, "fork"):
        return
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's clients are not its own
        try:
            status = asyncio.run(one_call())
            os.write(writer, f"{status} {int(store.degraded)}".encode())
        finally:
            os._exit(0)
    os.close(writer)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.read(reader, 100).decode() == "200 0"
    os.close(reader)
    assert asyncio.run(one_call()) == 200  # the parent's own clients still work
    assert server.count == 4


async def test_a_store_built_on_a_client_object_is_asked_through_an_async_twin_of_it(
    redis_server: RedisServer, server: RawServer, no_worker_threads: list[object]
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=0.5)
    store = RedisStore(client, prefix=prefix)
    server.script(answer(503), answer(503))
    async with AsyncResilientClient(
        retry=False, breaker=CircuitBreaker(consecutive_failures=2, store=store), budget=False
    ) as c:
        for _ in range(2):
            assert (await c.get(server.url + "/x")).status_code == 503
        with pytest.raises(HTTPXCircuitOpen):
            await c.get(server.url + "/x")
    assert server.count == 2
    assert no_worker_threads == []
    assert not store.degraded
    # The state in Redis, as a sync store reads it: the route group of /x is open.
    view = CircuitBreaker(store=RedisStore(redis_server.url, prefix=prefix))
    route = view.route_key_for(server.url + "/x")
    assert route is not None and view.state(route).state is CircuitState.OPEN
    await store.aclose()
    client.close()


# -- the rate limit in Redis: its schedule awaited through redis.asyncio, shared with sync sessions ----


def _arrivals(server: RawServer) -> list[float]:
    with server.lock:
        return [received.at for received in server.received]


def _blocking_ops(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the ops *store* runs with its blocking client (``run``), recorded."""
    ran: list[str] = []
    original = store.run

    def recorded(op: Any, key: str, args: Any) -> Any:
        ran.append(op.name)
        return original(op, key, args)

    monkeypatch.setattr(store, "run", recorded)
    return ran


async def test_an_async_client_takes_its_rate_limit_slots_from_redis_without_a_thread(
    redis_server: RedisServer,
    server: RawServer,
    no_worker_threads: list[object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    store = RedisStore(redis_server.url, prefix=prefix)
    blocking = _blocking_ops(store, monkeypatch)
    limit = RateLimit(calls=5, name="paced", adaptive=False, store=store)  # one call every 0.2 s
    # The first call is retried: its retry takes a slot of its own, asked inside the retry decision.
    server.script(answer(503), answer(200))
    async with AsyncResilientClient(rate_limit=limit, retry=RetryPolicy(1, backoff_factor=0)) as c:
        assert c.resilient_transport.policies.awaitable
        for _ in range(3):
            assert (await c.get(server.url + "/x")).status_code == 200
    assert no_worker_threads == []
    assert blocking == []  # nor the blocking client on the loop: every op went through redis.asyncio
    assert not store.degraded
    times = _arrivals(server)
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Spaced by the schedule (0.2 s; a call the loaded machine sent late shortens the gap after it),
    # where without the limit they would go milliseconds apart.
    assert min(gaps) >= 0.12, gaps
    assert times[-1] - times[0] >= 3 * 0.2 - 0.05
    # The schedule is in Redis, where a sync store (another process) finds it: the next slot is taken.
    raw = redis.Redis.from_url(redis_server.url)
    assert raw.exists(f"{prefix}:quota:paced") == 1
    raw.close()
    view = RateLimit(calls=5, name="paced", adaptive=False, store=RedisStore(redis_server.url, prefix=prefix))
    assert view.acquire("paced", max_wait=0.0).wait > 0.05
    await store.aclose()


async def test_a_sync_session_and_an_async_client_share_one_schedule_in_redis(
    redis_server: RedisServer, server: RawServer, no_worker_threads: list[object]
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    # Two stores, two callers: as two processes of a fleet would see one integration's quota.
    async_store, sync_store = (
        RedisStore(redis_server.url, prefix=prefix),
        RedisStore(redis_server.url, prefix=prefix),
    )
    server.script(answer(200))
    session = rs.ResilientSession(rate_limit=RateLimit(calls=5, name="shared", store=sync_store))
    async_limit = RateLimit(calls=5, name="shared", store=async_store)
    failures: list[BaseException] = []

    def sync_calls() -> None:
        try:
            for _ in range(3):
                assert session.get(server.url + "/sync").status_code == 200
        except BaseException as exc:  # seen by the test below
            failures.append(exc)

    async with AsyncResilientClient(rate_limit=async_limit, retry=False) as c:
        thread = threading.Thread(target=sync_calls)  # the session's own thread, not anyio's
        thread.start()
        for _ in range(3):
            assert (await c.get(server.url + "/async")).status_code == 200
        await anyio.to_thread.run_sync(thread.join)
    session.close()
    assert failures == []
    assert no_worker_threads == [thread.join]  # the join above; the async client's slots took none
    with server.lock:
        paths = sorted(received.path for received in server.received)
    assert paths == ["/async"] * 3 + ["/sync"] * 3
    times = sorted(_arrivals(server))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Alone, each caller would send its three calls 0.2 s apart, side by side with the other's (gaps of
    # milliseconds, 0.4 s in all); one schedule spaces all six (a call sent late shortens one gap).
    assert min(gaps) >= 0.12, gaps
    assert times[-1] - times[0] >= 0.8
    assert not async_store.degraded and not sync_store.degraded
    await async_store.aclose()


async def _ask_async(store: RedisStore, url: str, took: list[float], **options: Any) -> int:
    async with AsyncResilientClient(rate_limit=RateLimit(name="held", store=store), **options) as c:
        started = time.monotonic()
        try:
            return (await c.get(url)).status_code
        finally:
            took.append(time.monotonic() - started)


async def _ask_sync(store: RedisStore, url: str, took: list[float], **options: Any) -> int:
    # Blocking, in the event loop's thread: the sync side of one process, as the other tests here.
    with rs.ResilientSession(rate_limit=RateLimit(name="held", store=store), **options) as session:
        started = time.monotonic()
        try:
            return session.get(url).status_code
        finally:
            took.append(time.monotonic() - started)


@pytest.mark.parametrize(("learns", "held"), [(_ask_async, _ask_sync), (_ask_sync, _ask_async)])
async def test_a_retry_after_learned_by_one_side_holds_the_other_back(
    redis_server: RedisServer,
    server: RawServer,
    no_worker_threads: list[object],
    learns: Callable[..., Awaitable[int]],
    held: Callable[..., Awaitable[int]],
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    learning, holding = (
        RedisStore(redis_server.url, prefix=prefix),
        RedisStore(redis_server.url, prefix=prefix),
    )
    server.script(answer(429, headers={"Retry-After": "30"}))
    took: list[float] = []
    assert await learns(learning, server.url + "/x", took, retry=False) == 429
    with pytest.raises(QuotaExceededError) as caught:  # HTTPXQuotaExceeded is one too
        await held(holding, server.url + "/x", took, deadline=2.0)
    assert took[1] < 0.05  # refused at once
    assert isinstance(caught.value, HTTPXQuotaExceeded) is (held is _ask_async)
    assert caught.value.retry_after == pytest.approx(30, abs=1)
    assert server.count == 1  # the held side sent nothing
    assert no_worker_threads == []
    for store in (learning, holding):
        await store.aclose()


async def test_a_retry_after_on_a_retried_429_is_learned_in_the_decision_and_delays_the_retry(
    redis_server: RedisServer,
    server: RawServer,
    no_worker_threads: list[object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    store = RedisStore(redis_server.url, prefix=prefix)
    blocking = _blocking_ops(store, monkeypatch)
    server.script(answer(429, headers={"Retry-After": "1"}), answer(200))
    # The retry policy alone would wait no more than 0.1 s; the hold learned from the 429 says 1 s.
    retry = RetryPolicy(1, backoff_factor=0, respect_retry_after_header=False)
    async with AsyncResilientClient(rate_limit=RateLimit(name="r", store=store), retry=retry) as c:
        assert (await c.get(server.url + "/x")).status_code == 200
    assert no_worker_threads == []
    assert blocking == []
    first, second = _arrivals(server)
    assert second - first >= 1.0 - 0.03
    assert not store.degraded  # learned in Redis, not in the local fallback
    await store.aclose()


async def test_a_redis_that_never_answers_fails_the_rate_limit_open_within_the_op_timeout(
    server: RawServer, no_worker_threads: list[object]
) -> None:
    hole = _BlackHole()
    try:
        store = RedisStore(f"redis://127.0.0.1:{hole.port}/0", prefix="hole", op_timeout=0.1)
        server.script(answer(200))
        client = AsyncResilientClient(
            rate_limit=RateLimit(calls=100, store=store), breaker=False, budget=False, retry=False
        )
        async with client:
            took, gaps = await _one_call_while_the_loop_ticks(client, server.url + "/x")
        assert hole.accepted  # Redis was asked for the slot, and no answer came
    finally:
        hole.close()
    # The slot's op waited op_timeout (0.1 s), then the store fell back to memory (the answer's too).
    assert 0.1 <= took < 0.4
    assert store.degraded
    assert server.count == 1
    assert len(gaps) > 15 and max(gaps) < 0.05  # the loop kept running while Redis did not answer
    assert no_worker_threads == []


async def test_a_task_cancelled_while_waiting_for_its_redis_slot_sends_nothing(
    redis_server: RedisServer, server: RawServer, no_worker_threads: list[object]
) -> None:
    store = RedisStore(redis_server.url, prefix=f"test-{uuid.uuid4().hex}")
    server.script(answer(200))
    async with AsyncResilientClient(rate_limit=RateLimit(calls=1, name="c", store=store)) as c:
        await c.get(server.url + "/x")
        started = time.monotonic()
        with anyio.move_on_after(0.2) as scope:
            await c.get(server.url + "/x")  # its slot is ~1 s away: it sleeps, and is cancelled while it does
        assert scope.cancelled_caught
        assert time.monotonic() - started < 0.2 + 0.1
        await anyio.sleep(1.0)  # past the slot it had: it was not sent late either
        assert server.count == 1
        # It gave its slot back (through redis.asyncio, shielded from its cancellation): a call now
        # goes at once, where a spent slot would have put it a second from now.
        other = RedisStore(redis_server.url, prefix=store.prefix)
        assert RateLimit(calls=1, name="c", store=other).acquire("c").wait < 0.1
    assert no_worker_threads == []
    assert not store.degraded
    await store.aclose()


def test_under_trio_the_rate_limits_redis_ops_go_to_worker_threads_and_keep_one_schedule(
    redis_server: RedisServer, server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trio")
    prefix = f"test-{uuid.uuid4().hex}"
    store = RedisStore(redis_server.url, prefix=prefix)
    handed: list[tuple[object, str]] = []
    original = anyio.to_thread.run_sync

    async def recorded(func: Any, *args: Any, **kwargs: Any) -> Any:
        handed.append((getattr(func, "__self__", None), args[0].name))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", recorded)
    server.script(answer(200))

    async def calls() -> None:
        async with AsyncResilientClient(
            rate_limit=RateLimit(calls=5, name="t", store=store), breaker=False, budget=False
        ) as c:
            for _ in range(3):
                assert (await c.get(server.url + "/x")).status_code == 200

    anyio.run(calls, backend="trio")  # no asyncio loop: redis.asyncio cannot serve it
    # Each of the store's ops in a worker thread: a slot per call, and a look for a hold after each
    # wait (the answers said nothing to learn).
    assert handed == [
        (store, "quota_acquire"),
        (store, "quota_acquire"),
        (store, "quota_snapshot"),
        (store, "quota_acquire"),
        (store, "quota_snapshot"),
    ]
    assert not store.degraded
    times = _arrivals(server)
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.12, gaps
