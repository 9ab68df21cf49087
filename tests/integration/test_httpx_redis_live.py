"""The async client with policies in Redis: the same keys and scripts as the sync session, and a stalled
Redis never stalls the event loop."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator

import anyio
import pytest

import resilient_session as rs
from resilient_session import CircuitBreaker, RetryBudget
from resilient_session.httpx import AsyncResilientClient, HTTPXCircuitOpen
from resilient_session.stores import RedisStore
from tests.integration.rawserver import RawServer, answer
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


async def test_a_stalled_redis_does_not_stall_the_event_loop(
    redis_server: RedisServer, server: RawServer
) -> None:
    store = RedisStore(redis_server.url, prefix=f"test-{uuid.uuid4().hex}", op_timeout=0.1)
    server.script(answer(503), answer(200))
    ticks: list[float] = []
    breaker, budget = CircuitBreaker(store=store), RetryBudget(store=store)
    async with AsyncResilientClient(retry=1, breaker=breaker, budget=budget) as c:
        await c.get(server.url + "/warm")  # connections to Redis and upstream made before the stall
        server.script(answer(503), answer(200))
        sleeper = redis_server.pause(1.0)
        took = 0.0

        async def call() -> None:
            nonlocal took
            started = time.monotonic()
            assert (await c.get(server.url + "/x")).status_code == 200
            took = time.monotonic() - started
            tg.cancel_scope.cancel()

        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            tg.start_soon(call)
        sleeper.join()
    # Each store op waits at most op_timeout, then the store falls back to memory (one op, not each).
    assert took < 1.0
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert gaps and max(gaps) < 0.08  # the loop kept running while Redis was asked
    assert store.degraded
