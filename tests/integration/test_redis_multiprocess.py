"""Four processes share one Redis-backed circuit and one retry budget per host."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from resilient_session import CircuitBreaker, CircuitOpenError, ResilientSession, RetryBudget, RetryPolicy
from resilient_session.policies import CircuitState
from resilient_session.stores import RedisStore
from tests.test_redis_store import RedisServer

from .upstream import Reply, Upstream

PROCESSES = 4
THRESHOLD = 8


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def _breaker_worker(redis_url: str, prefix: str, url: str, start: Any, results: Any) -> None:
    opened: list[str] = []
    breaker = CircuitBreaker(
        consecutive_failures=THRESHOLD,
        open_wait=60.0,
        store=RedisStore(redis_url, prefix=prefix),
        listeners=[lambda change: opened.append(change.new.value)],
    )
    session = ResilientSession(breaker=breaker, retry=False)
    start.wait()
    sent = 0
    refused: CircuitOpenError | None = None
    for _ in range(200):
        try:
            session.get(url)
            sent += 1
        except CircuitOpenError as exc:
            refused = exc
            break
    results.put(
        {
            "sent": sent,
            "refused": refused is not None,
            "retry_in": refused.retry_in if refused else None,
            "opened": opened,
        }
    )


def _budget_worker(redis_url: str, prefix: str, url: str, start: Any, results: Any) -> None:
    budget = RetryBudget(capacity=40, store=RedisStore(redis_url, prefix=prefix))
    session = ResilientSession(budget=budget, breaker=False, retry=RetryPolicy(3, backoff_factor=0.001))
    start.wait()
    statuses = [session.get(url).status_code for _ in range(10)]
    results.put({"statuses": statuses})


def _run(target: Any, redis_url: str, prefix: str, url: str) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(redis_url, prefix, url, start, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    collected = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return collected


def test_four_processes_open_one_shared_circuit_together(
    redis_server: RedisServer, upstream: Upstream
) -> None:
    url = upstream.script("/down", Reply(503, b"down"))
    prefix = f"fleet-{uuid.uuid4().hex}"
    results = _run(_breaker_worker, redis_server.url, prefix, url)

    assert all(r["refused"] for r in results)  # every process ends up refused by the shared circuit
    assert all(0 < r["retry_in"] <= 60 for r in results)
    # One circuit for the fleet: it opened once, after THRESHOLD failures in total (plus the few calls
    # already in flight when it opened), not THRESHOLD per process.
    assert sum(r["opened"].count("open") for r in results) == 1
    reached = upstream.count("/down")
    assert reached == sum(r["sent"] for r in results)
    assert THRESHOLD <= reached <= THRESHOLD + PROCESSES - 1
    assert reached < PROCESSES * THRESHOLD

    observer = CircuitBreaker(store=RedisStore(redis_server.url, prefix=prefix))
    route = observer.route_key_for(url)  # 503s are the route group's failures
    assert route is not None
    snapshot = observer.state(route)
    assert snapshot.state is CircuitState.OPEN
    assert snapshot.trips == 1


def test_four_processes_draw_retries_from_one_shared_budget(
    redis_server: RedisServer, upstream: Upstream
) -> None:
    url = upstream.script("/down", Reply(503))
    prefix = f"fleet-{uuid.uuid4().hex}"
    results = _run(_budget_worker, redis_server.url, prefix, url)

    assert all(r["statuses"] == [503] * 10 for r in results)
    # 40 first attempts, then exactly 40 tokens / 5 = 8 retries for the whole fleet (unshared: 32).
    assert upstream.count("/down") == PROCESSES * 10 + 8
