"""Degraded answers under gevent and eventlet patched after import, with the store built before or after
the patch (its lock and SQLite connection real ones, or green ones). Each scenario runs in a fresh
interpreter (see ``test_process_models_live``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from .rawserver import RawServer, answer
from .test_process_models_live import run

GREEN = """
from resilient_session import CircuitBreaker, ResilientSession
from resilient_session.policies import Degrade
from resilient_session.stores import MemoryStore, ResponseStore

url, library, started_before, kind, path = sys.argv[1:6]
store = ResponseStore.memory() if kind == "memory" else ResponseStore.sqlite(path, timeout=1)
breaker = CircuitBreaker(consecutive_failures=1, open_wait=60, routes=False, store=MemoryStore())
session = ResilientSession(retry=0, breaker=breaker, degrade=Degrade(store=store))
if started_before == "yes":
    session.get(url)  # kept before the patch: the store's lock and connection are real ones
if library == "gevent":
    from gevent import monkey
    monkey.patch_all()
    import gevent
    spawn = gevent.spawn
    join = lambda jobs: gevent.joinall(jobs, timeout=15)
else:
    import eventlet
    eventlet.monkey_patch()
    spawn = eventlet.spawn
    join = lambda jobs: [job.wait() for job in jobs]
if started_before == "no":
    session.get(url)

def call():
    response = session.get(url)
    report(status=response.status_code, degraded=response.headers.get("Resilient-Degraded", ""))

call()  # the upstream answers 503 now: served from the store, and the circuit opens
join([spawn(call) for _ in range(3)])  # refused by the open circuit: served from the store
"""


@pytest.fixture
def flaky() -> Iterator[RawServer]:
    with RawServer() as server:
        server.script(answer(200, b'{"id": 1}'), answer(503))
        yield server


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("started_before", ["no", "yes"])
@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_green_threads_are_served_what_was_kept(
    flaky: RawServer, library: str, started_before: str, kind: str, tmp_path: Path
) -> None:
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    pytest.importorskip("requests_cache")
    args = (flaky.url + "/users/1", library, started_before, kind, str(tmp_path / "d.sqlite"))
    results = run(GREEN, *args, timeout=30)
    assert [r["status"] for r in results] == [200] * 4, results
    assert results[0]["degraded"].startswith("stale; reason=status")
    assert all(r["degraded"].startswith("stale; reason=circuit_open") for r in results[1:]), results
    assert flaky.count == 2  # the fresh answer, the 503; the open circuit sent nothing more
