"""The deadline watchdog and the bulkhead after ``os.fork()``, under gevent and eventlet patched after
import, and with pyOpenSSL injected into urllib3.

Each scenario runs in a fresh interpreter (``python -c``) against dripping loopback servers started by the
test, prints one JSON line per outcome (from every process it forks), and is killed if it hangs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .rawserver import RawServer, answer, drip_headers

#: A call with a deadline ends within deadline + this (scheduling in a fresh, forked or patched process).
SLACK = 0.4
DEADLINE = 0.5

#: Runs first in every scenario: a result line per outcome, flushed at once (children end with _exit).
PRELUDE = """
import json, os, sys, threading, time

def outcome(call):
    started = time.monotonic()
    try:
        result = call()
        kind = "status %d" % result.status_code
    except Exception as exc:
        kind = type(exc).__name__
    return {"outcome": kind, "elapsed": time.monotonic() - started, "pid": os.getpid()}

def report(**fields):
    sys.stdout.write(json.dumps(fields) + "\\n")
    sys.stdout.flush()
"""

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture
def drip() -> Iterator[RawServer]:
    with RawServer() as server:
        server.script(drip_headers(0.1))
        yield server


@pytest.fixture
def fast() -> Iterator[RawServer]:
    with RawServer() as server:
        server.script(answer(200))
        yield server


def run(script: str, *args: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Run *script* in a fresh interpreter with *args*; its JSON lines, in the order printed."""
    try:
        completed = subprocess.run(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the process hung for {timeout} s; it printed: {hung.stdout!r}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def deadline_kept(result: dict[str, Any], deadline: float = DEADLINE) -> bool:
    return result["outcome"] == "DeadlineExceededError" and result["elapsed"] < deadline + SLACK


# -- fork ----------------------------------------------------------------------------------------------

FORK_AFTER_CALLS = """
import multiprocessing
from resilient_session import ResilientSession

drip, fast, how = sys.argv[1:4]
session = ResilientSession(deadline=5.0, breaker=False)
session.get(fast)  # the parent's watchdog thread is running when the process forks
report(side="parent", **outcome(lambda: session.get(drip, deadline=0.5)))

def child():
    report(side="child", **outcome(lambda: session.get(drip, deadline=0.5)))
    report(side="child", **outcome(lambda: session.get(drip, deadline=0.5)))
    report(side="child", **outcome(lambda: session.get(fast)))

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
report(side="parent", **outcome(lambda: session.get(drip, deadline=0.5)))
"""


@pytest.mark.parametrize("how", ["os.fork", "multiprocessing"])
def test_a_forked_child_keeps_its_deadlines(drip: RawServer, fast: RawServer, how: str) -> None:
    results = run(FORK_AFTER_CALLS, drip.url + "/drip", fast.url + "/ok", how)
    parent = [r for r in results if r["side"] == "parent"]
    child = [r for r in results if r["side"] == "child"]
    assert len(parent) == 2 and len(child) == 3, results
    assert {r["pid"] for r in child}.isdisjoint({r["pid"] for r in parent})
    assert all(deadline_kept(r) for r in parent), parent
    assert deadline_kept(child[0]) and deadline_kept(child[1]), child
    assert child[2]["outcome"] == "status 200"
    assert drip.count == 4  # every call reached the server: each one was ended by its deadline


FORK_WHILE_THREADS_CALL = """
from resilient_session import ResilientSession

drip, fast, children, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.setswitchinterval(1e-5)  # threads are preempted often, inside the package's locks too
stop = threading.Event()
calls = []

def busy():
    # Short calls with a deadline: each takes and gives back the watchdog's lock several times.
    session = ResilientSession(deadline=5.0, breaker=False)
    n = 0
    while not stop.is_set():
        session.get(fast)
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
        # A session made in the child: only what the package shares process-wide is inherited.
        sys.setswitchinterval(0.005)
        session = ResilientSession(breaker=False)
        report(side="child", **outcome(lambda: session.get(drip, deadline=0.5)))
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


def test_a_fork_taken_while_32_threads_call_leaves_no_child_hung(drip: RawServer, fast: RawServer) -> None:
    children = 40
    results = run(FORK_WHILE_THREADS_CALL, drip.url + "/drip", fast.url + "/ok", str(children), "32")
    parent = next(r for r in results if r["side"] == "parent")
    child = [r for r in results if r["side"] == "child"]
    assert parent["hung"] == 0
    assert parent["calls"] > 100  # the threads were calling while the process forked
    assert len(child) == children
    slow = [r for r in child if not deadline_kept(r, DEADLINE + 0.5)]  # 40 children on a busy machine
    assert not slow, slow


FORK_WITH_BULKHEAD_FULL = """
from resilient_session import Bulkhead, ResilientSession

drip, fast = sys.argv[1:3]
session = ResilientSession(bulkhead=Bulkhead(2, max_wait=0.2, name="upstream"), breaker=False)
holders = [threading.Thread(target=lambda: session.get(drip, deadline=3.0)) for _ in range(2)]
for holder in holders:
    holder.start()
time.sleep(0.5)  # both slots are taken by calls blocked on the dripping server
report(side="parent", **outcome(lambda: session.get(fast)))
pid = os.fork()
if pid == 0:
    report(side="child", **outcome(lambda: session.get(fast)))
    report(side="child", **outcome(lambda: session.get(fast)))
    # The cap holds for the child's own calls.
    mine = [threading.Thread(target=lambda: session.get(drip, deadline=1.5)) for _ in range(2)]
    for thread in mine:
        thread.start()
    time.sleep(0.5)
    report(side="child", **outcome(lambda: session.get(fast)))
    for thread in mine:
        thread.join()
    os._exit(0)
os.waitpid(pid, 0)
for holder in holders:
    holder.join()
report(side="parent", **outcome(lambda: session.get(fast)))
"""


def test_a_bulkhead_full_at_fork_is_empty_in_the_child(drip: RawServer, fast: RawServer) -> None:
    results = run(FORK_WITH_BULKHEAD_FULL, drip.url + "/drip", fast.url + "/ok")
    parent = [r["outcome"] for r in results if r["side"] == "parent"]
    child = [r["outcome"] for r in results if r["side"] == "child"]
    assert parent == ["BulkheadFullError", "status 200"]  # full at fork time, freed when the calls ended
    assert child == ["status 200", "status 200", "BulkheadFullError"]
    assert fast.count == 3
    assert drip.count == 4  # two calls of the parent's, two of the child's


# -- idle exit -----------------------------------------------------------------------------------------

IDLE_AFTER_LONG_DEADLINE = """
from resilient_session import ResilientSession
from resilient_session._watchdog import WATCHDOG

fast, idle = sys.argv[1], float(sys.argv[2])
WATCHDOG.idle_exit = idle

def watchdogs():
    return sum(t.name == "resilient-session-watchdog" for t in threading.enumerate())

session = ResilientSession(deadline=600.0, breaker=False)
report(**outcome(lambda: session.get(fast)), threads=watchdogs())
report(daemon=[t.daemon for t in threading.enumerate() if t.name == "resilient-session-watchdog"])
time.sleep(idle + 0.7)
before = watchdogs()
report(**outcome(lambda: session.get(fast)), threads_before=before, threads=watchdogs())
"""


def test_the_watchdog_ends_when_idle_even_after_a_long_deadline(fast: RawServer) -> None:
    first, daemon, second = run(IDLE_AFTER_LONG_DEADLINE, fast.url + "/ok", "0.3")
    assert first["outcome"] == "status 200" and first["threads"] == 1
    assert daemon["daemon"] == [True]  # never keeps the process alive
    assert second["threads_before"] == 0  # ended 0.3 s after the last call, not 600 s after it began
    assert second["outcome"] == "status 200" and second["threads"] == 1  # and the next call restarts it


# -- gevent and eventlet, patched after import ---------------------------------------------------------

GREEN = """
import resilient_session
from resilient_session import Bulkhead, ResilientSession

drip, fast, library, started_before = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "yes"
session = ResilientSession(breaker=False)
capped = ResilientSession(bulkhead=Bulkhead(1, max_wait=3.0, name="one"), breaker=False)
if started_before:
    session.get(fast, deadline=5.0)  # the watchdog runs as a real thread when the patch comes
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

report(**outcome(lambda: session.get(drip, deadline=0.5)))
ticks = []

def ticker():
    # Proves the hub keeps running while calls wait on the dripping server.
    for _ in range(10):
        ticks.append(time.monotonic())
        sleep(0.1)

jobs = [spawn(ticker)] + [
    spawn(lambda: report(**outcome(lambda: session.get(drip, deadline=0.5)))) for _ in range(3)
]
join(jobs)
report(ticks=len(ticks))
report(**outcome(lambda: session.get(drip, deadline=0.5)))
report(**outcome(lambda: session.get(fast, deadline=5.0)))

# A green thread waiting for the bulkhead's only slot gets it when the call holding it ends.
holder = spawn(lambda: report(bulkhead="holder", **outcome(lambda: capped.get(drip, deadline=0.5))))
sleep(0.1)
waiter = spawn(lambda: report(bulkhead="waiter", **outcome(lambda: capped.get(fast, deadline=5.0))))
join([holder, waiter])
"""


@pytest.mark.parametrize("started_before", ["no", "yes"])
@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_green_threads_patched_after_import_keep_every_deadline(
    drip: RawServer, fast: RawServer, library: str, started_before: str
) -> None:
    if importlib.util.find_spec(library) is None:  # not imported here: eventlet hooks fork on import
        pytest.skip(f"{library} is not installed")
    results = run(GREEN, drip.url + "/drip", fast.url + "/ok", library, started_before, timeout=30)
    calls = [r for r in results if "outcome" in r and "bulkhead" not in r]
    assert [r["outcome"] for r in calls] == ["DeadlineExceededError"] * 5 + ["status 200"], calls
    assert all(deadline_kept(r) for r in calls[:5]), calls
    assert next(r["ticks"] for r in results if "ticks" in r) == 10
    capped = {r["bulkhead"]: r for r in results if "bulkhead" in r}
    assert deadline_kept(capped["holder"])
    assert capped["waiter"]["outcome"] == "status 200"
    assert 0.2 < capped["waiter"]["elapsed"] < DEADLINE + SLACK  # it waited for the holder's slot
    assert drip.count == 6


# -- pyOpenSSL -----------------------------------------------------------------------------------------

PYOPENSSL = """
import urllib3.contrib.pyopenssl
from resilient_session import ResilientSession

drip, fast, ca = sys.argv[1:4]
urllib3.contrib.pyopenssl.inject_into_urllib3()
session = ResilientSession(breaker=False)
for _ in range(3):
    report(**outcome(lambda: session.get(drip, deadline=0.5, verify=ca)))
report(**outcome(lambda: session.get(fast, deadline=5.0, verify=ca)))
response = session.get(fast, deadline=5.0, verify=ca, stream=True)
report(sock=type(response.raw._connection.sock).__name__)
response.close()
"""


def test_pyopenssl_injected_keeps_every_deadline(tmp_path: Path) -> None:
    if importlib.util.find_spec("OpenSSL") is None:
        pytest.skip("pyOpenSSL is not installed")
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with RawServer(tls=context) as drip, RawServer(tls=context) as fast:
        drip.script(drip_headers(0.1))
        fast.script(answer(200))
        started = time.monotonic()
        results = run(PYOPENSSL, drip.url + "/drip", fast.url + "/ok", str(ca_file))
        assert time.monotonic() - started < 20
        calls = [r for r in results if "outcome" in r]
        assert [r["outcome"] for r in calls] == ["DeadlineExceededError"] * 3 + ["status 200"], calls
        assert all(deadline_kept(r) for r in calls[:3]), calls
        assert next(r["sock"] for r in results if "sock" in r) == "WrappedSocket"  # pyOpenSSL's, really
        assert drip.count == 3
