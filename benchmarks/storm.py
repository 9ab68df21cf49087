"""Retry storm: what a dead upstream receives from plain requests + urllib3 ``Retry(3)`` vs ResilientSession.

A loopback upstream (its own process) answers normally, then is down for the middle third of the run
(10 s of 30 s; 3 s of 12 s with ``--quick``), then recovers. Eight client threads call it in a closed
loop, first with ``requests.Session`` + ``HTTPAdapter(max_retries=Retry(3))``, then with
``ResilientSession(breaker=True)`` (default retry policy, retry budget and circuit breaker).

"Down" means the process accepts the connection, reads the request and closes without answering, the
way a crashing backend behind a load balancer looks; ``--mode 503`` answers 503 instead (and the plain
client then retries 502/503/504 too, as it would be configured to). The upstream counts every request
that reaches it.

Targets: during the outage the upstream receives at most 10% of what plain requests sends it, and a
call refused by the open circuit takes under 50 µs (median, measured around ``session.get``).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from resilient_session import CircuitBreaker, CircuitOpenError, ResilientSession
from resilient_session.policies import StateChange

try:
    from ._common import print_table, row
except ImportError:  # run as a script (python benchmarks/NAME.py): the folder is on sys.path
    from _common import print_table, row  # type: ignore[no-redef]

THREADS = 8
LOAD_TARGET = 0.10
LATENCY_TARGET_US = 50.0
BODY = b'{"status": "ok"}'


# -- the upstream, in its own process so it never competes with the clients for the GIL ----------------


def _serve(port_queue: Any, window: Any, counters: Any, mode: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            now = time.time()
            down = window[0] <= now < window[1]
            with counters.get_lock():
                counters[1 if down else 0] += 1
            if not down:
                self._answer(200, BODY)
            elif mode == "503":
                self._answer(503, b'{"error": "unavailable"}')
            else:
                self.close_connection = True  # read the request, answer nothing, hang up

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


# -- the clients -----------------------------------------------------------------------------------------


def _plain_session(mode: str) -> requests.Session:
    session = requests.Session()
    retry = Retry(3, status_forcelist=(502, 503, 504)) if mode == "503" else Retry(3)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _Result:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fast_fail_seconds: list[float] = []
        self.first_success_after_outage: float | None = None
        self.calls = 0


def _drive(
    session: requests.Session, url: str, started: float, duration: float, outage_end: float, result: _Result
) -> None:
    fast: list[float] = []
    calls = 0
    first_ok: float | None = None
    deadline = started + duration
    while (now := time.monotonic()) < deadline:
        calls += 1
        begin = time.perf_counter()
        try:
            response = session.get(url)
            if response.ok and first_ok is None and now - started >= outage_end:
                first_ok = time.monotonic() - started
        except CircuitOpenError:
            fast.append(time.perf_counter() - begin)
        except requests.RequestException:
            pass
    with result.lock:
        result.fast_fail_seconds.extend(fast)
        result.calls += calls
        if first_ok is not None and (
            result.first_success_after_outage is None or first_ok < result.first_success_after_outage
        ):
            result.first_success_after_outage = first_ok


def _storm(
    make: Callable[[], requests.Session],
    url: str,
    window: Any,
    counters: Any,
    duration: float,
    outage: tuple[float, float],
) -> tuple[int, _Result, float]:
    """Run one client through the storm: (requests that reached the upstream while down, results, start)."""
    session = make()
    session.get(url)  # warm up the connection pool and code paths
    with counters.get_lock():
        counters[0] = counters[1] = 0
    wall, started = time.time(), time.monotonic()
    window[0], window[1] = wall + outage[0], wall + outage[1]
    result = _Result()
    threads = [
        threading.Thread(target=_drive, args=(session, url, started, duration, outage[1], result))
        for _ in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    session.close()
    window[0] = window[1] = 0.0
    return counters[1], result, wall


def run(quick: bool = False, mode: str = "drop") -> list[dict[str, Any]]:
    """Run both storms and return the rows."""
    return _run(quick, mode)[0]


def _run(quick: bool, mode: str) -> tuple[list[dict[str, Any]], list[str]]:
    duration, outage = (12.0, (3.0, 6.0)) if quick else (30.0, (10.0, 20.0))
    context = multiprocessing.get_context("spawn")
    port_queue: Any = context.Queue()
    window: Any = context.Array("d", [0.0, 0.0], lock=False)
    counters: Any = context.Array("q", [0, 0])
    server = context.Process(target=_serve, args=(port_queue, window, counters, mode), daemon=True)
    server.start()
    changes: list[tuple[float, StateChange]] = []

    def ours() -> requests.Session:
        breaker = CircuitBreaker(listeners=[lambda change: changes.append((time.time(), change))])
        return ResilientSession(breaker=breaker)

    logger = logging.getLogger("resilient_session")
    level = logger.level
    try:
        url = f"http://127.0.0.1:{port_queue.get(timeout=30)}/orders"
        plain_down, _, _ = _storm(lambda: _plain_session(mode), url, window, counters, duration, outage)
        # Transitions are printed as a timeline instead of log lines in the middle of the table.
        logger.setLevel(logging.ERROR)
        ours_down, resilient, started = _storm(ours, url, window, counters, duration, outage)
    finally:
        logger.setLevel(level)
        server.terminate()
        server.join(5)

    ratio = ours_down / plain_down if plain_down else float("inf")
    fast = resilient.fast_fail_seconds
    median_us = statistics.median(fast) * 1e6 if fast else float("inf")
    p99_us = statistics.quantiles(fast, n=100)[98] * 1e6 if len(fast) >= 100 else float("inf")
    recovered = resilient.first_success_after_outage
    rows = [
        row(
            "storm",
            f"upstream requests during outage, requests+Retry(3) ({mode})",
            plain_down,
            "req",
            "baseline",
            True,
        ),
        row("storm", "upstream requests during outage, ResilientSession", ours_down, "req", "", True),
        row(
            "storm",
            "outage load ratio (ours / requests)",
            ratio,
            "x",
            f"<= {LOAD_TARGET}",
            ratio <= LOAD_TARGET,
        ),
        row(
            "storm",
            f"open-circuit fast-fail median ({THREADS} threads)",
            median_us,
            "us",
            f"< {LATENCY_TARGET_US:.0f}",
            median_us < LATENCY_TARGET_US,
        ),
        row("storm", "open-circuit fast-fail p99", p99_us, "us", "", True),
        row("storm", "calls refused by the open circuit", len(fast), "calls", "", True),
        row(
            "storm",
            "first success after the upstream returned (ours)",
            (recovered - outage[1]) if recovered is not None else float("inf"),
            "s",
            "",
            True,
        ),
    ]
    timeline = [
        f"t={at - started:6.2f}s  circuit {change.old.value} -> {change.new.value}: {change.reason}"
        for at, change in changes
    ]
    return rows, timeline


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a 12 s run (3 s outage) instead of 30 s (10 s)")
    parser.add_argument("--mode", choices=("drop", "503"), default="drop", help="how the upstream is down")
    arguments = parser.parse_args()
    table, events = _run(arguments.quick, arguments.mode)
    print(f"upstream down from {'3 to 6' if arguments.quick else '10 to 20'} s; ResilientSession's circuit:")
    for line in events:
        print(f"  {line}")
    print_table(table)
