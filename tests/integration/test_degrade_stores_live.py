"""Degraded answers kept in SQLite and Redis: shared between sessions (and processes), bounded when the
store stalls."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from resilient_session import ResilientSession
from resilient_session.policies import Degrade
from resilient_session.stores import ResponseStore
from tests.test_redis_store import RedisServer

from .upstream import Reply, Upstream

pytest.importorskip("requests_cache")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


def _session(url: str, store: ResponseStore) -> ResilientSession:
    return ResilientSession(base_url=url, retry=0, breaker=False, timeout=2, degrade=Degrade(store=store))


def _fetch_in_child(url: str, store_kind: str, where: str, out: Any) -> None:
    store = (
        ResponseStore.sqlite(where, timeout=1)
        if store_kind == "sqlite"
        else ResponseStore.redis(where, timeout=1)
    )
    response = _session(url, store).get("/users/1")
    degraded = response.normalized.degraded  # type: ignore[attr-defined]
    out.put((response.status_code, response.json(), degraded.kind if degraded else None))


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_another_process_is_served_what_one_process_stored(
    kind: str, upstream: Upstream, redis_server: RedisServer, tmp_path: Path
) -> None:
    where = str(tmp_path / "degrade.sqlite") if kind == "sqlite" else redis_server.url
    store = (
        ResponseStore.sqlite(where, timeout=1) if kind == "sqlite" else ResponseStore.redis(where, timeout=1)
    )
    store.clear()
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    assert _session(upstream.url, store).get("/users/1").json() == {"id": 1}
    upstream.script("/users/1", Reply(status=503))
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=_fetch_in_child, args=(upstream.url, kind, where, out))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert out.get(timeout=5) == (200, {"id": 1}, "stale")
    assert upstream.count("/users/1") == 1  # the child's call reached the upstream, which answered 503


def test_redis_entries_expire_once_too_old_to_serve(upstream: Upstream, redis_server: RedisServer) -> None:
    store = ResponseStore.redis(redis_server.url, namespace="expiry", timeout=1)
    store.clear()
    session = ResilientSession(
        base_url=upstream.url, retry=0, breaker=False, degrade=Degrade(store=store, max_stale=30)
    )
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    session.get("/users/1")
    client = redis.Redis.from_url(redis_server.url)
    ttls = [client.ttl(k) for k in client.keys("expiry*") if client.type(k) == b"string"]
    assert ttls and all(25 < ttl <= 30 for ttl in ttls), ttls


def test_a_stalled_redis_costs_each_call_at_most_the_store_timeout(
    upstream: Upstream, redis_server: RedisServer
) -> None:
    store = ResponseStore.redis(redis_server.url, namespace="stall", timeout=0.1, cooldown=0)
    session = _session(upstream.url, store)
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    session.get("/users/1")
    sleeper = redis_server.pause(2.0)
    try:
        upstream.script("/users/1", Reply(status=503))
        started = time.monotonic()
        answer = session.get("/users/1")
        took = time.monotonic() - started
        assert answer.status_code == 503  # the store could not answer in time: as without it
        assert took < 0.1 * 2 + 0.4  # a read (and redis-py's one reconnect) bounded by the timeout
    finally:
        sleeper.join(5)
    # The server is back: the stored answer is served again.
    assert session.get("/users/1").json() == {"id": 1}


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_a_forked_child_builds_its_own_connection_and_serves_what_the_parent_kept(
    kind: str, upstream: Upstream, redis_server: RedisServer, tmp_path: Path
) -> None:
    if kind == "memory":
        store = ResponseStore.memory()
    elif kind == "sqlite":
        store = ResponseStore.sqlite(str(tmp_path / "fork.sqlite"), timeout=1)
    else:
        store = ResponseStore.redis(redis_server.url, namespace="fork", timeout=1)
    session = _session(upstream.url, store)
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    session.get("/users/1")
    session.close()  # no kept-alive connection shared with the child
    upstream.script("/users/1", Reply(status=503))
    parent_backend = store.backend
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        code = 1
        try:
            answer = session.get("/users/1")
            fresh_backend = store.backend is not parent_backend
            ok = answer.json() == {"id": 1} and answer.headers.get("Resilient-Degraded", "").startswith(
                "stale"
            )
            os.write(write, f"{ok} {fresh_backend}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    report = os.read(read, 100).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == f"True {kind != 'memory'}"
    assert session.get("/users/1").json() == {"id": 1}  # the parent's store still works


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_what_another_process_stores_or_deletes_is_seen_at_once(
    kind: str, upstream: Upstream, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Each store object remembers the answers it decoded; the stored bytes are read every time, so a
    # newer answer, or the deletion a no-store answer causes, is seen by the other at its next call.
    def build() -> ResponseStore:
        if kind == "sqlite":
            return ResponseStore.sqlite(str(tmp_path / "memo.sqlite"), timeout=1)
        return ResponseStore.redis(redis_server.url, namespace="memo", timeout=1)

    mine, theirs = build(), build()
    mine.clear()
    reader, writer = _session(upstream.url, mine), _session(upstream.url, theirs)
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    reader.get("/users/1")
    upstream.script("/users/1", Reply(status=503))
    assert [reader.get("/users/1").json() for _ in range(2)] == [{"id": 1}, {"id": 1}]
    upstream.script("/users/1", Reply(body=b'{"id": 2}'))
    assert writer.get("/users/1").json() == {"id": 2}
    upstream.script("/users/1", Reply(status=503))
    assert reader.get("/users/1").json() == {"id": 2}
    no_store = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    upstream.script("/users/1", Reply(body=b'{"id": 3}', headers=no_store))
    assert writer.get("/users/1").json() == {"id": 3}
    upstream.script("/users/1", Reply(status=503))
    after = reader.get("/users/1")
    assert after.status_code == 503
    assert after.normalized.degraded is None  # type: ignore[attr-defined]
    assert upstream.count("/users/1") == 1  # it asked the upstream, which answered 503
