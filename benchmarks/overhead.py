"""Throughput of ResilientSession against plain requests.Session on loopback keep-alive GETs.

The server runs in its own process (so it does not share the client's GIL) and answers every GET with
the same bytes at a small, constant cost, so the figure is the client's. The two clients run interleaved
rounds, alternating which goes first, and the ratio of median throughputs is printed.
Target: ResilientSession keeps at least 0.97 of plain requests' throughput.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from resilient_session import ResilientSession

try:
    from ._common import print_table, row
except ImportError:  # run as a script (python benchmarks/NAME.py): the folder is on sys.path
    from _common import print_table, row  # type: ignore[no-redef]

TARGET = 0.97
BODY = b'{"status": "ok", "items": [1, 2, 3]}'


_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


def _answer(conn: socket.socket) -> None:
    # A minimal keep-alive responder: it reads up to the blank line ending each GET's headers and
    # sends one fixed answer, so the server's cost is small and the same whatever the client sends
    # (a Python http.server spends ~0.1 ms parsing each extra header, which would drown the client's cost).
    buffered = b""
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            while b"\r\n\r\n" not in buffered:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffered += chunk
            _, _, buffered = buffered.partition(b"\r\n\r\n")
            conn.sendall(_RESPONSE)


def _serve(port_queue: Any) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port_queue.put(listener.getsockname()[1])
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_answer, args=(conn,), daemon=True).start()


def _rate(session: requests.Session, url: str, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        session.get(url).content  # noqa: B018
    return n / (time.perf_counter() - started)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure and return the rows (requests/s of each client and their ratio)."""
    rounds, per_round = (10, 200) if quick else (40, 300)
    queue: Any = multiprocessing.get_context("spawn").Queue()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{queue.get(timeout=30)}/ping"
        clients: dict[str, Callable[[], requests.Session]] = {
            "requests.Session": requests.Session,
            "ResilientSession": ResilientSession,
        }
        sessions = {name: make() for name, make in clients.items()}
        for session in sessions.values():
            _rate(session, url, 200)  # warm up connections and code paths
        rates: dict[str, list[float]] = {name: [] for name in sessions}
        for i in range(rounds):
            order = list(sessions) if i % 2 == 0 else list(reversed(sessions))
            for name in order:
                rates[name].append(_rate(sessions[name], url, per_round))
        for session in sessions.values():
            session.close()
    finally:
        server.terminate()
        server.join(5)
    plain = statistics.median(rates["requests.Session"])
    ours = statistics.median(rates["ResilientSession"])
    # Each round's two runs sit side by side in time, so their ratio cancels most of the machine's
    # drift; the median of those paired ratios is the figure.
    ratio = statistics.median(
        o / p for o, p in zip(rates["ResilientSession"], rates["requests.Session"], strict=True)
    )
    return [
        row("overhead", "requests.Session throughput", plain, "req/s", "baseline", True),
        row("overhead", "ResilientSession throughput", ours, "req/s", "", True),
        row(
            "overhead",
            "throughput ratio (ours / requests, paired)",
            ratio,
            "x",
            f">= {TARGET}",
            ratio >= TARGET,
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    print_table(run(quick=parser.parse_args().quick))
