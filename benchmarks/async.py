"""Async clients: client CPU per call, and 1,000 concurrent calls with deadlines against a dripping upstream.

Run it as a script: ``python benchmarks/async.py`` (``async`` is a keyword, so it is not importable as
``benchmarks.async``). Needs the ``bench`` and ``httpx`` extras (aiohttp, httpx).

**CPU per call.** The upstream runs in its own process (an asyncio server answering keep-alive GETs with
the same 36-byte JSON body), so it shares neither the client's GIL nor its CPU clock. Each client makes a
batch of sequential keep-alive GETs in one event loop, timed in CPU seconds of the client process
(``time.process_time``); every round runs every client once in a rotating order, and each client's figure
is the median over rounds of its CPU per call, with its ratio to plain ``httpx.AsyncClient`` in the same
round (paired, so the machine's drift cancels; above 1: cheaper than httpx).

**Deadlines.** 1,000 tasks each call a path whose body drips one byte every 50 ms, with
``deadline=0.5``, all at once, through one client whose pool holds ``--pool`` connections (default 100,
httpx's own default): the calls beyond it wait for a connection in the transport's queue until their
deadline cancels them. Every call must end within deadline + 50 ms, with
:class:`~resilient_session.httpx.HTTPXDeadlineExceeded`. A call ended at its deadline leaves its work to
close its connection in a task of its own, behind the caller; once those clean-ups have ended (waited
for at most a second after the last call) no task of ours may be left, the client's pool must hold no
connection, and the upstream must see every connection closed (the clean-ups still running as the last
call ended, and how long they took, are shown for context). For context, the same calls through a pool
of 1,000 connections (each call sent at once), and through plain ``httpx.AsyncClient`` (same pool size)
with ``asyncio.wait_for``, whose calls wait in httpcore's pool.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from resilient_session.httpx import AsyncResilientClient, HTTPXDeadlineExceeded

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, row

BODY = b'{"id": 12345, "name": "benchmark", "ok": true}'[:36]
DEADLINE = 0.5
SLACK = 0.05
PLAIN = "plain httpx.AsyncClient + asyncio.wait_for"


# -- the upstream, in its own process ----------------------------------------------------------------


def _upstream(port_queue: Any, stats_queue: Any) -> None:
    asyncio.run(_upstream_main(port_queue, stats_queue))


async def _upstream_main(port_queue: Any, stats_queue: Any) -> None:
    open_connections = 0
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(BODY)).encode()
        + b"\r\n\r\n"
        + BODY
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections
        open_connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                if path == b"/stats":
                    text = str(open_connections - 1).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(text)).encode() + b"\r\n\r\n" + text
                    )
                elif path == b"/drip":
                    body = b"x" * 400
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                    )
                    for byte in body:
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(0.05)
                else:
                    writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            open_connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=2048)
    port_queue.put(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


# -- CPU per call ------------------------------------------------------------------------------------

Factory = Callable[[], Any]


async def _batch_httpx(client: httpx.AsyncClient, url: str, calls: int) -> float:
    await client.get(url)  # connection made outside the timing
    started = time.process_time()
    for _ in range(calls):
        response = await client.get(url)
        response.content  # noqa: B018
    return (time.process_time() - started) / calls


async def _batch_aiohttp(session: aiohttp.ClientSession, url: str, calls: int) -> float:
    async with session.get(url) as response:
        await response.read()
    started = time.process_time()
    for _ in range(calls):
        async with session.get(url) as response:
            await response.read()
    return (time.process_time() - started) / calls


async def _measure(name: str, url: str, calls: int) -> float:
    if name == "httpx.AsyncClient":
        async with httpx.AsyncClient() as client:
            return await _batch_httpx(client, url, calls)
    if name == "AsyncResilientClient (defaults)":
        async with AsyncResilientClient() as resilient:
            return await _batch_httpx(resilient, url, calls)
    if name == "AsyncResilientClient + .normalized.data":
        async with AsyncResilientClient() as resilient:
            await resilient.get(url)
            started = time.process_time()
            for _ in range(calls):
                (await resilient.get(url)).normalized.data  # type: ignore[attr-defined]  # noqa: B018
            return (time.process_time() - started) / calls
    async with aiohttp.ClientSession() as session:
        return await _batch_aiohttp(session, url, calls)


CLIENTS = (
    "httpx.AsyncClient",
    "AsyncResilientClient (defaults)",
    "AsyncResilientClient + .normalized.data",
    "aiohttp.ClientSession",
)


def cpu_per_call(base: str, rounds: int, calls: int) -> list[dict[str, Any]]:
    per_client: dict[str, list[float]] = {name: [] for name in CLIENTS}
    ratios: dict[str, list[float]] = {name: [] for name in CLIENTS}
    for index in range(rounds):
        order = CLIENTS[index % len(CLIENTS) :] + CLIENTS[: index % len(CLIENTS)]
        figures = {name: asyncio.run(_measure(name, base + "/fast", calls)) for name in order}
        for name in CLIENTS:
            per_client[name].append(figures[name])
            ratios[name].append(figures["httpx.AsyncClient"] / figures[name])
    rows = []
    for name in CLIENTS:
        rows.append(
            row(
                "async-overhead",
                f"{name} client CPU per GET",
                statistics.median(per_client[name]) * 1e6,
                "us",
            )
        )
    for name in CLIENTS:
        rows.append(
            row(
                "async-overhead",
                f"{name}: throughput vs httpx.AsyncClient",
                statistics.median(ratios[name]),
                "x",
            )
        )
    return rows


# -- deadlines under load ----------------------------------------------------------------------------


@contextlib.contextmanager
def _gc_pauses() -> Any:
    """The pauses of Python's cyclic garbage collector while the block runs (seconds each): it stops
    the event loop, so a pause while deadlines pass delays every call that ends in it."""
    pauses: list[float] = []
    began = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began[0])

    gc.callbacks.append(timed)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(timed)


async def _deadline_calls(
    base: str,
    tasks: int,
    pool: int,
    pauses: list[float] | None = None,
    cleanups: list[float] | None = None,
) -> tuple[list[float], dict[str, int], int, int]:
    """*tasks* calls at once through a client with a pool of *pool* connections: their durations, their
    outcomes, and the tasks and pooled connections left once the clean-ups ended, waited for at most a
    second (*pauses* gets the garbage collector's pauses while they ran; *cleanups*, the clean-ups still
    running as the last call ended, and how long they took to end)."""
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    durations: list[float] = []
    outcomes: dict[str, int] = {}
    async with AsyncResilientClient(deadline=DEADLINE, limits=limits, retry=False, breaker=False) as client:

        async def one() -> None:
            started = time.monotonic()
            try:
                await client.get(base + "/drip")
                kind = "answered"
            except HTTPXDeadlineExceeded:
                kind = "deadline"
            except Exception as exc:  # reported, never hidden
                kind = type(exc).__name__
            durations.append(time.monotonic() - started)
            outcomes[kind] = outcomes.get(kind, 0) + 1

        before = asyncio.all_tasks()
        # What earlier runs left for the collector is collected before, not while, the calls run (as
        # pyperf does before each timing); its pauses while they run are still counted below.
        gc.collect()
        with _gc_pauses() as seen:
            await asyncio.gather(*(one() for _ in range(tasks)))
        if pauses is not None:
            pauses.extend(seen)
        # Under asyncio a call ended at its deadline leaves its work to close its connection in its own
        # task, behind the caller: give those clean-ups a second, then count what is left.
        cleaning = len(asyncio.all_tasks() - before)
        waited = time.monotonic()
        while asyncio.all_tasks() - before and time.monotonic() - waited < 1.0:
            await asyncio.sleep(0.001)
        cleaned_in = time.monotonic() - waited
        leftover_tasks = len(asyncio.all_tasks() - before)
        connections = client.resilient_transport.transport._pool  # type: ignore[attr-defined]
        leftover_client = len(connections.connections)
    if cleanups is not None:
        cleanups.extend((cleaning, cleaned_in))
    return durations, outcomes, leftover_tasks, leftover_client


async def _deadlines(base: str, tasks: int, pool: int) -> list[dict[str, Any]]:
    pauses: list[float] = []
    cleanups: list[float] = []
    durations, outcomes, leftover_tasks, leftover_client = await _deadline_calls(
        base, tasks, pool, pauses, cleanups
    )
    await asyncio.sleep(1.0)  # the upstream notices closed sockets at its next write (every 50 ms)
    async with httpx.AsyncClient() as probe:
        leftover_upstream = int((await probe.get(base + "/stats")).text)
    within = sum(1 for d in durations if d <= DEADLINE + SLACK)
    worst = max(durations)
    rows = [
        row("async-deadlines", f"calls with deadline={DEADLINE}s against a 50 ms drip", tasks, "calls"),
        row("async-deadlines", "connections in the client's pool", pool, ""),
        row(
            "async-deadlines",
            "ended with HTTPXDeadlineExceeded",
            outcomes.get("deadline", 0),
            "calls",
            f"= {tasks}",
            outcomes.get("deadline", 0) == tasks,
        ),
        row(
            "async-deadlines", "ended within deadline + 50 ms", within, "calls", f"= {tasks}", within == tasks
        ),
        row("async-deadlines", "median call duration", statistics.median(durations) * 1e3, "ms"),
        row(
            "async-deadlines",
            "p99 call duration",
            sorted(durations)[int(0.99 * (len(durations) - 1))] * 1e3,
            "ms",
        ),
        row(
            "async-deadlines",
            "slowest call",
            worst * 1e3,
            "ms",
            f"<= {(DEADLINE + SLACK) * 1e3:.0f}",
            worst <= DEADLINE + SLACK,
        ),
        row(
            "async-deadlines",
            "context: clean-ups still closing connections as the last call ended",
            cleanups[0],
            "tasks",
        ),
        row("async-deadlines", "context: ... all ended within", cleanups[1] * 1e3, "ms"),
        row("async-deadlines", "tasks left behind", leftover_tasks, "", "= 0", leftover_tasks == 0),
        row(
            "async-deadlines",
            "connections left in the client's pool",
            leftover_client,
            "",
            "= 0",
            leftover_client == 0,
        ),
        row(
            "async-deadlines",
            "connections the upstream still holds open",
            leftover_upstream,
            "",
            "= 0",
            leftover_upstream == 0,
        ),
        row(
            "async-deadlines",
            "context: garbage-collector pauses while the calls ran, longest",
            max(pauses, default=0.0) * 1e3,
            "ms",
        ),
        row("async-deadlines", "context: garbage-collector pauses, total", sum(pauses) * 1e3, "ms"),
    ]
    wide, _, _, _ = await _deadline_calls(base, tasks, tasks)
    await asyncio.sleep(1.0)
    plain = await _plain_httpx_deadlines(base, tasks, pool)
    rows += [
        row(
            "async-deadlines",
            f"context: a pool of {tasks:,} connections, median",
            statistics.median(wide) * 1e3,
            "ms",
        ),
        row("async-deadlines", f"context: a pool of {tasks:,} connections, slowest", max(wide) * 1e3, "ms"),
        row(
            "async-deadlines",
            f"context: plain httpx.AsyncClient (pool of {pool}) + asyncio.wait_for, median",
            plain[0] * 1e3,
            "ms",
        ),
        row(
            "async-deadlines",
            f"context: plain httpx.AsyncClient (pool of {pool}) + asyncio.wait_for, slowest",
            plain[1] * 1e3,
            "ms",
        ),
    ]
    others = {k: v for k, v in outcomes.items() if k != "deadline"}
    for kind, count in sorted(others.items()):
        rows.append(row("async-deadlines", f"ended otherwise: {kind}", count, "calls"))
    return rows


async def _plain_httpx_deadlines(base: str, tasks: int, pool: int) -> tuple[float, float]:
    """The same calls through plain httpx with ``asyncio.wait_for``: what httpx's pool costs by itself."""
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    durations: list[float] = []
    async with httpx.AsyncClient(limits=limits) as client:

        async def one() -> None:
            started = time.monotonic()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(client.get(base + "/drip"), DEADLINE)
            durations.append(time.monotonic() - started)

        gc.collect()
        await asyncio.gather(*(one() for _ in range(tasks)))
    await asyncio.sleep(1.0)
    return statistics.median(durations), max(durations)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=100, help="connections in the client's pool")
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    port_queue, stats_queue = context.Queue(), context.Queue()
    upstream = context.Process(target=_upstream, args=(port_queue, stats_queue), daemon=True)
    upstream.start()
    base = f"http://127.0.0.1:{port_queue.get(timeout=30)}"
    try:
        rows = cpu_per_call(base, args.rounds, args.calls)
        rows += asyncio.run(_deadlines(base, args.tasks, args.pool))
    finally:
        upstream.terminate()
        upstream.join(10)
    print_table(rows)
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
