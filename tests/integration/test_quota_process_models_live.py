"""Rate limits after ``os.fork()`` and under gevent and eventlet patched after import, each in a fresh
interpreter against a loopback server started by the test."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from .rawserver import RawServer, answer
from .test_process_models_live import run

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture
def fast() -> Iterator[RawServer]:
    with RawServer() as server:
        server.script(answer(200))
        yield server


FORK = """
from resilient_session import ResilientSession
from resilient_session.policies import RateLimit

fast = sys.argv[1]
session = ResilientSession(rate_limit=RateLimit(calls=2), breaker=False)
session.get(fast)
session.get(fast)  # the parent's schedule is now busy for a second
pid = os.fork()
if pid == 0:
    # The child's process-wide store starts empty: its first call does not wait for the parent's slots.
    first = outcome(lambda: session.get(fast))
    second = outcome(lambda: session.get(fast))
    report(side="child", first=first["elapsed"], second=second["elapsed"], outcome=second["outcome"])
    os._exit(0)
os.waitpid(pid, 0)
report(side="parent", **outcome(lambda: session.get(fast)))
"""


def test_a_forked_child_starts_with_its_own_schedule(fast: RawServer) -> None:
    results = {r["side"]: r for r in run(FORK, fast.url + "/ok", timeout=30)}
    child = results["child"]
    assert child["outcome"] == "status 200"
    assert child["first"] < 0.3  # not behind the parent's reservations
    assert 0.3 < child["second"] < 1.2  # its own limit still spaces its calls (0.5 s at 2/s)
    assert results["parent"]["outcome"] == "status 200"


GREEN = """
from resilient_session import ResilientSession
from resilient_session.policies import RateLimit

fast, library = sys.argv[1], sys.argv[2]
session = ResilientSession(rate_limit=RateLimit(calls=10), breaker=False)
session.get(fast)  # the store's lock is a real one when the patch comes
if library == "gevent":
    from gevent import monkey
    monkey.patch_all()
    import gevent
    spawn, sleep = gevent.spawn, gevent.sleep
    join = lambda jobs: gevent.joinall(jobs, timeout=15)
else:
    import eventlet
    eventlet.monkey_patch()
    spawn, sleep = eventlet.spawn, eventlet.sleep
    join = lambda jobs: [job.wait() for job in jobs]
ticks = []

def ticker():
    for _ in range(8):
        ticks.append(time.monotonic())
        sleep(0.1)

started = time.monotonic()
jobs = [spawn(ticker)] + [
    spawn(lambda: [report(**outcome(lambda: session.get(fast))) for _ in range(2)]) for _ in range(4)
]
join(jobs)
report(total=time.monotonic() - started, ticks=len(ticks))
"""


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_green_threads_wait_for_their_slots_without_blocking_the_hub(fast: RawServer, library: str) -> None:
    if importlib.util.find_spec(library) is None:  # not imported here: eventlet hooks fork on import
        pytest.skip(f"{library} is not installed")
    results = run(GREEN, fast.url + "/ok", library, timeout=30)
    calls = [r for r in results if "outcome" in r]
    summary = next(r for r in results if "total" in r)
    assert [r["outcome"] for r in calls] == ["status 200"] * 8
    assert summary["total"] >= 0.7  # 8 calls at 10/s, after the one made before the patch
    assert summary["ticks"] == 8  # the hub kept running while green threads slept for their slots
    assert fast.count == 9
