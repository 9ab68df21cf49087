"""Graceful degradation: how many reads are still answered while the upstream is down, and how fast.

A loopback upstream (its own process) serves 200 distinct JSON resources. For the middle half of the run
(15 s of 30 s; 6 s of 12 s with ``--quick``) it is down, in three equal phases: connection refused (the
listener is closed and every kept-alive connection reset), then ``503``, then silent (it reads the request
and never answers). Sixteen threads read random resources in a closed loop, with each client in turn:

- plain ``requests.Session``;
- ``ResilientSession()`` without degradation;
- ``ResilientSession(degrade=Degrade(max_stale=60))`` with a memory store, then with a SQLite store;
- requests-cache ``CachedSession(stale_if_error=True, expire_after=1)`` (memory backend).

Every client has the timeout ``(1, 2)``. For each: the share of calls made during the outage that got an
answer (fresh, stale, fallback), the oldest stale answer, and the p99 latency of calls made during the
outage. The reference "cache lookup" is the p99 latency of the calls requests-cache answered from its
cache (fresh) before the outage, under the same 16 threads.

Targets (degradation on): >= 99 % of outage calls answered, every stale answer within ``max_stale``, and
p99 during the outage within 2x the cache lookup (not the timeout).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import random
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from resilient_session import ResilientSession
from resilient_session.policies import Degrade
from resilient_session.stores import ResponseStore

try:
    from ._common import print_table, row
except ImportError:  # run as a script (python benchmarks/NAME.py): the folder is on sys.path
    from _common import print_table, row  # type: ignore[no-redef]

THREADS = 16
RESOURCES = 200
MAX_STALE = 60.0
TIMEOUT = (1.0, 2.0)
ANSWERED_TARGET = 0.99
LATENCY_FACTOR = 2.0

NOTES = """
Each client runs alone for the whole timeline, on a 2-core machine shared with other work: latencies are
noisy. "answered" counts a 2xx answer, whatever its origin. requests-cache answers from its cache without
a request while an entry is fresh (1 s here), so part of its "fresh" answers never reached the upstream.
"""


# -- the upstream, in its own process so it never competes with the clients for the GIL ----------------


def _phase(window: Any) -> str:
    """``up``, ``refused``, ``503`` or ``silent`` now; *window* holds the outage's start and end."""
    now = time.time()
    start, end = window[0], window[1]
    if not start or not start <= now < end:
        return "up"
    third = (end - start) / 3
    return ("refused", "503", "silent")[min(2, int((now - start) // third))]


def _handle(conn: socket.socket, window: Any) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    try:
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            phase = _phase(window)
            if phase == "refused":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return  # reset: the next attempt meets the closed listener
            if phase == "silent":
                while _phase(window) == "silent":
                    time.sleep(0.05)
                return
            if phase == "503":
                body = b'{"error": "unavailable"}'
                status = b"503 Service Unavailable"
            else:
                body = b'{"resource": "%s", "served_at": %.3f}' % (path.encode(), time.time())
                status = b"200 OK"
            conn.sendall(
                b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (status, len(body), body)
            )
    except OSError:
        return
    finally:
        conn.close()


def _serve(port_queue: Any, window: Any) -> None:
    listener: socket.socket | None = None
    port = 0
    while True:
        if _phase(window) == "refused":
            if listener is not None:
                listener.close()
                listener = None
            time.sleep(0.01)
            continue
        if listener is None:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(256)
            listener.settimeout(0.01)
            if not port:
                port = listener.getsockname()[1]
                port_queue.put(port)
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        conn.settimeout(None)
        threading.Thread(target=_handle, args=(conn, window), daemon=True).start()


# -- the clients -----------------------------------------------------------------------------------------


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outage = {"fresh": 0, "stale": 0, "fallback": 0, "failed": 0}
        self.outage_latencies: list[float] = []
        self.cache_hit_latencies: list[float] = []  # requests-cache answers from its cache before the outage
        self.oldest_stale = 0.0
        self.calls = 0


def _kind(response: requests.Response) -> tuple[str, float]:
    """``fresh``, ``stale`` or ``fallback``, and the age of a stale answer."""
    degraded = getattr(response, "degraded", None)
    if degraded is not None:
        return degraded.kind, degraded.age or 0.0
    if getattr(response, "from_cache", False) and getattr(response, "is_expired", False):
        created: datetime = response.created_at  # type: ignore[attr-defined]
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        return "stale", (datetime.now(timezone.utc) - created).total_seconds()
    return "fresh", 0.0


def _drive(
    session: requests.Session, base: str, window: Any, deadline: float, tally: _Tally, seed: int
) -> None:
    pick = random.Random(seed)
    outage = {"fresh": 0, "stale": 0, "fallback": 0, "failed": 0}
    latencies: list[float] = []
    hits: list[float] = []
    oldest = 0.0
    calls = 0
    while time.monotonic() < deadline:
        calls += 1
        url = f"{base}/items/{pick.randrange(RESOURCES)}"
        during = _phase(window) != "up"
        begin = time.perf_counter()
        kind = "failed"
        age = 0.0
        try:
            response = session.get(url, timeout=TIMEOUT)
            if response.ok:
                kind, age = _kind(response)
                if not during and getattr(response, "from_cache", False) and kind == "fresh":
                    hits.append(time.perf_counter() - begin)
        except requests.RequestException:
            pass
        took = time.perf_counter() - begin
        if during:
            outage[kind] += 1
            latencies.append(took)
            if kind == "stale":
                oldest = max(oldest, age)
    with tally.lock:
        for key, value in outage.items():
            tally.outage[key] += value
        tally.outage_latencies.extend(latencies)
        tally.cache_hit_latencies.extend(hits)
        tally.oldest_stale = max(tally.oldest_stale, oldest)
        tally.calls += calls


def _run_client(make: Callable[[], requests.Session], base: str, window: Any, duration: float) -> _Tally:
    session = make()
    for index in range(RESOURCES):  # every resource fetched once, as a service running for a while has
        with contextlib.suppress(requests.RequestException):
            session.get(f"{base}/items/{index}", timeout=TIMEOUT)
    wall, started = time.time(), time.monotonic()
    window[0], window[1] = wall + duration / 4, wall + duration * 3 / 4
    tally = _Tally()
    threads = [
        threading.Thread(target=_drive, args=(session, base, window, started + duration, tally, seed))
        for seed in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    window[0] = window[1] = 0.0
    session.close()
    return tally


def _p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Run every client through the outage and return the rows."""
    duration = 12.0 if quick else 30.0
    context = multiprocessing.get_context("spawn")
    port_queue: Any = context.Queue()
    window: Any = context.Array("d", [0.0, 0.0], lock=False)
    server = context.Process(target=_serve, args=(port_queue, window), daemon=True)
    server.start()
    folder = tempfile.TemporaryDirectory()
    # Circuit transitions, store warnings and requests-cache's "using cached response" tracebacks would
    # drown the table.
    loggers = [logging.getLogger(name) for name in ("resilient_session", "requests_cache")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)

    def plain() -> requests.Session:
        return requests.Session()

    def ours() -> requests.Session:
        return ResilientSession()

    def degrade_memory() -> requests.Session:
        return ResilientSession(degrade=Degrade(max_stale=MAX_STALE, store=ResponseStore.memory()))

    def degrade_sqlite() -> requests.Session:
        store = ResponseStore.sqlite(str(Path(folder.name) / "degrade.sqlite"))
        return ResilientSession(degrade=Degrade(max_stale=MAX_STALE, store=store))

    def cached() -> requests.Session:
        from requests_cache import CachedSession

        return CachedSession(backend="memory", stale_if_error=True, expire_after=1)

    clients: list[tuple[str, Callable[[], requests.Session], bool]] = [
        ("requests.Session", plain, False),
        ("ResilientSession, no degradation", ours, False),
        ("ResilientSession + Degrade (memory)", degrade_memory, True),
        ("ResilientSession + Degrade (SQLite)", degrade_sqlite, True),
        ("requests-cache CachedSession(stale_if_error)", cached, False),
    ]
    results: dict[str, _Tally] = {}
    try:
        base = f"http://127.0.0.1:{port_queue.get(timeout=30)}"
        for name, make, _ in clients:
            results[name] = _run_client(make, base, window, duration)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        server.terminate()
        server.join(5)
        folder.cleanup()

    reference = _p99(results["requests-cache CachedSession(stale_if_error)"].cache_hit_latencies)
    rows = [
        row("degrade", "cache lookup: p99 of requests-cache's cache hits (16 threads)", reference * 1e3, "ms")
    ]
    for name, _, target in clients:
        tally = results[name]
        total = sum(tally.outage.values()) or 1
        answered = (tally.outage["fresh"] + tally.outage["stale"] + tally.outage["fallback"]) / total
        p99 = _p99(tally.outage_latencies)
        rows += [
            row(
                "degrade",
                f"{name}: outage calls answered",
                answered * 100,
                "%",
                f">= {ANSWERED_TARGET * 100:.0f}" if target else "",
                answered >= ANSWERED_TARGET,
            ),
            row(
                "degrade",
                f"{name}: outage calls (fresh / stale / fallback / failed = "
                + " / ".join(str(tally.outage[k]) for k in ("fresh", "stale", "fallback", "failed"))
                + ")",
                total,
                "calls",
            ),
            row(
                "degrade",
                f"{name}: p99 latency during the outage",
                p99 * 1e3,
                "ms",
                f"<= {LATENCY_FACTOR:g}x lookup" if target else "",
                p99 <= LATENCY_FACTOR * reference,
            ),
        ]
        if target or tally.outage["stale"]:
            rows.append(
                row(
                    "degrade",
                    f"{name}: oldest stale answer",
                    tally.oldest_stale,
                    "s",
                    f"<= {MAX_STALE:g}" if target else "",
                    tally.oldest_stale <= MAX_STALE,
                )
            )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a 12 s run per client (6 s outage) instead of 30 s"
    )
    print_table(run(parser.parse_args().quick))
