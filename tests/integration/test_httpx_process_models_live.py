"""The httpx clients after ``os.fork()`` and under gevent and eventlet patched after import.

As in ``test_process_models_live.py``: each scenario runs in a fresh interpreter against loopback servers
started by the test, prints one JSON line per outcome (from every process it forks) and is killed if it
hangs. The slow server drips the body: the sync client checks its deadline between body chunks.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import pytest

from .rawserver import RawServer, answer, drip_body
from .test_process_models_live import run

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

DEADLINE = 0.5
#: A call with a deadline ends within deadline + this (scheduling in a fresh, forked or patched process).
SLACK = 0.4


@pytest.fixture
def slow() -> Iterator[RawServer]:
    with RawServer() as server:
        server.script(drip_body(0.1))
        yield server


@pytest.fixture
def fast() -> Iterator[RawServer]:
    with RawServer() as server:
        server.script(answer(200))
        yield server


def deadline_kept(result: dict[str, Any], deadline: float = DEADLINE) -> bool:
    return result["outcome"] == "HTTPXDeadlineExceeded" and result["elapsed"] < deadline + SLACK


# -- fork ----------------------------------------------------------------------------------------------

FORK_AFTER_CALLS = """
import asyncio
import multiprocessing
from resilient_session import Bulkhead
from resilient_session.httpx import AsyncResilientClient, ResilientClient
from resilient_session.policies import RateLimit

slow, fast, how = sys.argv[1:4]
policies = dict(bulkhead=Bulkhead(4, name="up"), rate_limit=RateLimit(calls=1000, name="up"))
client = ResilientClient(deadline=5.0, **policies)
client.get(fast)  # a pooled keep-alive connection, and the policies' state in use, when the process forks
report(side="parent", **outcome(lambda: client.get(slow, deadline=0.5)))

async def async_calls():
    async with AsyncResilientClient(**policies) as c:
        report(side="child", **outcome(lambda: None) | {"outcome": "async"})
        for url, deadline in ((slow, 0.5), (fast, 5.0)):
            started = time.monotonic()
            try:
                kind = "status %d" % (await c.get(url, deadline=deadline)).status_code
            except Exception as exc:
                kind = type(exc).__name__
            report(side="child", outcome=kind, elapsed=time.monotonic() - started, pid=os.getpid())

def child():
    report(side="child", **outcome(lambda: client.get(slow, deadline=0.5)))
    report(side="child", **outcome(lambda: client.get(fast)))
    asyncio.run(async_calls())

if how == "os.fork":
    pid = os.fork()
    if pid == 0:
        child()
        os._exit(0)
    os.waitpid(pid, 0)
else:
    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(20)
report(side="parent", **outcome(lambda: client.get(slow, deadline=0.5)))
report(side="parent", **outcome(lambda: client.get(fast)))
"""


@pytest.mark.parametrize("how", ["os.fork", "multiprocessing"])
def test_a_forked_child_keeps_its_deadlines_and_policies(slow: RawServer, fast: RawServer, how: str) -> None:
    results = run(FORK_AFTER_CALLS, slow.url + "/slow", fast.url + "/ok", how)
    parent = [r for r in results if r["side"] == "parent"]
    child = [r for r in results if r["side"] == "child" and r["outcome"] != "async"]
    assert len(parent) == 3 and len(child) == 4, results
    assert {r["pid"] for r in child}.isdisjoint({r["pid"] for r in parent})
    assert deadline_kept(parent[0]) and deadline_kept(parent[1]), parent
    assert parent[2]["outcome"] == "status 200"
    assert deadline_kept(child[0]) and deadline_kept(child[2]), child
    assert child[1]["outcome"] == "status 200" and child[3]["outcome"] == "status 200"
    assert slow.count == 4  # every call reached the server: each one was ended by its deadline
    # The parent's kept-alive connection, and one of the child's own for each of its clients: the child
    # never sent on the parent's socket (which the parent used again after the fork).
    assert fast.connections == 3


FORK_WHILE_THREADS_CALL = """
from resilient_session import Bulkhead
from resilient_session.httpx import ResilientClient

slow, fast, children, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.setswitchinterval(1e-5)  # threads are preempted often, inside the package's and httpx's locks too
stop = threading.Event()
calls = []
shared = ResilientClient(deadline=5.0, bulkhead=Bulkhead(64, name="up"))

def busy():
    n = 0
    while not stop.is_set():
        shared.get(fast)
        n += 1
    calls.append(n)

workers = [threading.Thread(target=busy) for _ in range(threads)]
for worker in workers:
    worker.start()
time.sleep(0.3)
pids = []
for _ in range(children):
    pid = os.fork()
    if pid == 0:
        sys.setswitchinterval(0.005)
        # The parent's client, whose pool lock a parent thread may have held at the fork ...
        report(side="child", **outcome(lambda: shared.get(slow, deadline=0.5)))
        # ... and a client made in the child: only what the package shares process-wide is inherited.
        client = ResilientClient(bulkhead=Bulkhead(64, name="up"))
        report(side="child", **outcome(lambda: client.get(slow, deadline=0.5)))
        os._exit(0)
    pids.append(pid)
    time.sleep(0.02)
hung = 0
give_up = time.monotonic() + 20
for pid in pids:
    while True:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > give_up:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            hung += 1
            break
        time.sleep(0.01)
stop.set()
for worker in workers:
    worker.join()
report(side="parent", hung=hung, calls=sum(calls))
"""


def test_a_fork_taken_while_threads_call_leaves_no_child_hung(slow: RawServer, fast: RawServer) -> None:
    children = 20
    results = run(FORK_WHILE_THREADS_CALL, slow.url + "/slow", fast.url + "/ok", str(children), "16")
    parent = next(r for r in results if r["side"] == "parent")
    child = [r for r in results if r["side"] == "child"]
    assert parent["hung"] == 0
    assert parent["calls"] > 50  # the threads were calling while the process forked
    assert len(child) == 2 * children
    late = [r for r in child if not deadline_kept(r, DEADLINE + 0.5)]  # 20 children on a busy machine
    assert not late, late


# -- gevent and eventlet, patched after import ---------------------------------------------------------

GREEN = """
from resilient_session import Bulkhead
from resilient_session.httpx import ResilientClient

slow, fast, library, started_before = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "yes"
client = ResilientClient()
capped = ResilientClient(bulkhead=Bulkhead(1, max_wait=3.0, name="one"))
if started_before:
    client.get(fast, deadline=5.0)  # a pooled connection, real locks, before the patch
    capped.get(fast)  # and the bulkhead's lock is a real one
if library == "gevent":
    from gevent import monkey
    monkey.patch_all()
    import gevent
    spawn, joinall, sleep = gevent.spawn, gevent.joinall, gevent.sleep
    join = lambda jobs: joinall(jobs, timeout=15)
else:
    import eventlet
    eventlet.monkey_patch()
    spawn, sleep = eventlet.spawn, eventlet.sleep
    join = lambda jobs: [job.wait() for job in jobs]

report(**outcome(lambda: client.get(slow, deadline=0.5)))
ticks = []

def ticker():
    # Proves the hub keeps running while calls wait on the slow server.
    for _ in range(10):
        ticks.append(time.monotonic())
        sleep(0.1)

jobs = [spawn(ticker)] + [
    spawn(lambda: report(**outcome(lambda: client.get(slow, deadline=0.5)))) for _ in range(3)
]
join(jobs)
report(ticks=len(ticks))
report(**outcome(lambda: client.get(fast, deadline=5.0)))

# A green thread waiting for the bulkhead's only slot gets it when the call holding it ends.
holder = spawn(lambda: report(bulkhead="holder", **outcome(lambda: capped.get(slow, deadline=0.5))))
sleep(0.1)
waiter = spawn(lambda: report(bulkhead="waiter", **outcome(lambda: capped.get(fast, deadline=5.0))))
join([holder, waiter])
"""


@pytest.mark.parametrize("started_before", ["no", "yes"])
@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_green_threads_patched_after_import_keep_every_deadline(
    slow: RawServer, fast: RawServer, library: str, started_before: str
) -> None:
    if importlib.util.find_spec(library) is None:  # not imported here: eventlet hooks fork on import
        pytest.skip(f"{library} is not installed")
    results = run(GREEN, slow.url + "/slow", fast.url + "/ok", library, started_before, timeout=30)
    calls = [r for r in results if "outcome" in r and "bulkhead" not in r]
    assert [r["outcome"] for r in calls] == ["HTTPXDeadlineExceeded"] * 4 + ["status 200"], calls
    assert all(deadline_kept(r) for r in calls[:4]), calls
    assert next(r["ticks"] for r in results if "ticks" in r) == 10
    capped = {r["bulkhead"]: r for r in results if "bulkhead" in r}
    assert deadline_kept(capped["holder"])
    assert capped["waiter"]["outcome"] == "status 200"
    assert 0.2 < capped["waiter"]["elapsed"] < DEADLINE + SLACK  # it waited for the holder's slot
    assert slow.count == 5
