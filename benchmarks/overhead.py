"""Client CPU per keep-alive GET of a small JSON body: ResilientSession, its peers, and each default's cost.

The upstream runs in its own process (so it shares neither the client's GIL nor its CPU clock) and answers
every GET with the same bytes at a small, constant cost. Each client is timed in CPU seconds of the client
process (``time.process_time``) over a batch of GETs; every round runs every client once, in a rotating
order, and each client's figure is the median over rounds of its ratio to ``requests.Session`` in the same
round (paired, so the machine's drift cancels). A ratio above 1 means cheaper than ``requests.Session``.

Targets: ResilientSession with its defaults >= 1.6x ``requests.Session`` and ahead of
``httpx.Client(transport=HTTPTransport(retries=3))`` in the same run; with ``.normalized.data`` read too,
>= 1.0x.

Profile: Python function calls per GET (``sys.setprofile`` "call" events on the client thread, one warm
GET), all of them and those in the HTTP stack's own code (requests, urllib3, this package; httpx, httpcore,
h11), for requests, ResilientSession and httpx; target: ResilientSession's HTTP-stack calls no more than
requests' own.

Per-feature cost: sessions that differ from the defaults by one feature run in the same rounds; a
feature's cost is the median paired difference of CPU per call (defaults minus defaults-without-it), and
its share is that cost over the defaults' CPU per call. Each cost is shown with half the interquartile range
of its paired differences: a figure inside that spread is noise, and is shown as measured, negative or not.
The call/deadline state cannot be switched off, so it is timed alone.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import resilient_session.session as session_module
from resilient_session import ResilientAdapter, ResilientSession

try:
    from ._common import print_table, row
except ImportError:  # run as a script (python benchmarks/NAME.py): the folder is on sys.path
    from _common import print_table, row  # type: ignore[no-redef]

NOTES = """
Client CPU per keep-alive GET of a 36-byte JSON body; the upstream is a minimal responder in its own
process. Every round runs every client once in a rotating order; a client's ratio is the median over
rounds of `requests.Session`'s CPU per call divided by the client's, in the same round (above 1: cheaper
than `requests.Session`). *Lean* is `ResilientSession(breaker=False, budget=False,
request_id_header=None, tracing=False)`: timeouts, retries, deadline and typed errors only.

Why a drop-in can cost less than `requests.Session`: requests recomputes, on every call, answers that
depend only on their inputs, and runs steps that do nothing for most calls. It reads the environment
(`merge_environment_settings` scans all of `os.environ` four times for proxy variables, and
`prepare_request` looks for a netrc file); `ResilientSession` remembers those answers until the
environment or the netrc file changes (`resilient_session/_environ.py`; the saving grows with the number
of environment variables, this machine's count is in the table; on macOS and Windows, with no proxy
variable set, proxies come from the system configuration and are not remembered). It prepares every
request from scratch (new dicts and cookie jars, a regular expression per header, an empty cookie jar
asked for a `Cookie` header); the common request (no body, parameters, cookies, credentials or hooks) is
prepared from remembered parts (`_prepare.py`). It parses the URL three times per attempt to find the
pool and request line (`_lookups.py` remembers them per host and TLS settings), copies the response
headers one by one and parses cookies that are not there (`_response.py`), reads a body of stated length
in 10 KiB steps (one read here), and runs the hooks, the cookie parse and the redirect generator for an
answer with no hook, no cookie and no redirect (`_send.py` skips exactly those). Each shortcut applies
only while the requests code it mirrors is installed and not wrapped (an instrumentation library's
wrapper is always called), and has a test comparing it with requests' own path.

Python calls per GET: `sys.setprofile` counts the Python function calls one warm GET makes on the client
thread (the fewest of five GETs): *all* of them, and those in the HTTP stack's own code (requests,
urllib3 and this package; httpx, httpcore and h11 for httpx). requests' *all* figure is mostly its reading
of `os.environ` on every call; the *HTTP stack* figure is the one the target compares. Both are counts, not
times: a C-level call (a dict look-up, a socket read) is not counted.

Per-feature costs: each row toggles one default off (`breaker=False`, `budget=False`,
`request_id_header=None`, `tracing=False`, `retry=False`, an adapter without the lazy `.normalized`
attachment, a session that reads the environment and prepares every request as requests does) and runs
it back to back with the defaults (A B B A); the cost is the median paired difference, with half its
interquartile range: on a busy 2-core machine that spread is tens of microseconds, more than most
features cost. So each feature's own work on the call path is also *timed alone* (no network, best of
five batches of 50,000), which is the figure to read; the share is of the defaults' CPU per GET. The
call/deadline state cannot be switched off and is only timed alone.
"""

DEFAULTS_TARGET = 1.6
NORMALIZED_TARGET = 1.0
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


# -- the clients ------------------------------------------------------------------------------------

Get = Callable[[], Any]


def _urllib3(url: str) -> Get:
    import urllib3

    pool = urllib3.PoolManager()
    return lambda: pool.request("GET", url).data


def _httpx(url: str) -> Get:
    import httpx

    client = httpx.Client(transport=httpx.HTTPTransport(retries=3))
    return lambda: client.get(url).content


def _requests(url: str) -> Get:
    session = requests.Session()
    return lambda: session.get(url).content


def _requests_retry(url: str) -> Get:
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=Retry(total=3, backoff_factor=0.1))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return lambda: session.get(url).content


def _requests_tenacity(url: str) -> Get:
    import tenacity

    session = requests.Session()

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.1),
        retry=tenacity.retry_if_exception_type(requests.RequestException),
        reraise=True,
    )
    def get() -> bytes:
        response = session.get(url)
        response.raise_for_status()
        return response.content

    return get


def _requests_stamina(url: str) -> Get:
    import stamina

    session = requests.Session()

    @stamina.retry(on=requests.RequestException, attempts=3)
    def get() -> bytes:
        response = session.get(url)
        response.raise_for_status()
        return response.content

    return get


def _requests_pybreaker(url: str) -> Get:
    import pybreaker

    session = requests.Session()
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    return lambda: breaker.call(session.get, url).content


def _ours(url: str, **options: Any) -> Get:
    session = ResilientSession(**options)
    return lambda: session.get(url).content


def _ours_normalized(url: str) -> Get:
    session = ResilientSession()
    return lambda: session.get(url).normalized.data


#: The lean configuration: timeouts, retries, deadline and typed errors, nothing else.
LEAN: dict[str, Any] = {"breaker": False, "budget": False, "request_id_header": None, "tracing": False}

PEERS: dict[str, Callable[[str], Get]] = {
    "urllib3.PoolManager (floor)": _urllib3,
    "httpx.Client(HTTPTransport(retries=3))": _httpx,
    "requests.Session": _requests,
    "requests + urllib3 Retry(3) adapter": _requests_retry,
    "requests + tenacity": _requests_tenacity,
    "requests + stamina": _requests_stamina,
    "requests + pybreaker": _requests_pybreaker,
    "ResilientSession (defaults)": _ours,
    "ResilientSession (defaults) + .normalized.data": _ours_normalized,
    "ResilientSession (lean: no breaker/budget/request id/tracing)": lambda url: _ours(url, **LEAN),
}


class _PlainResponseAdapter(ResilientAdapter):
    """The default adapter without the lazy ``.normalized`` attachment."""

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        return super(ResilientAdapter, self).build_response(req, resp)


class _NoEnvironmentMemo(ResilientSession):
    """The default session reading the environment on every call, as requests does."""

    def merge_environment_settings(self, *args: Any) -> Any:
        return requests.Session.merge_environment_settings(self, *args)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        return requests.Session.prepare_request(self, request)


def _without_normalization(url: str) -> Get:
    session = ResilientSession()
    for prefix in ("http://", "https://"):
        session.mount(
            prefix, _PlainResponseAdapter(session.retry, breaker=session.breaker, budget=session.budget)
        )
    return lambda: session.get(url).content


def _without_memo(url: str) -> Get:
    session = _NoEnvironmentMemo()
    return lambda: session.get(url).content


#: Defaults minus one feature each: (feature, how the variant is built).
FEATURES: dict[str, Callable[[str], Get]] = {
    "circuit breaker": lambda url: _ours(url, breaker=False),
    "retry budget": lambda url: _ours(url, budget=False),
    "request id header": lambda url: _ours(url, request_id_header=None),
    "tracing check (no provider installed)": lambda url: _ours(url, tracing=False),
    "retry policy (urllib3 Retry)": lambda url: _ours(url, retry=False),
    "lazy .normalized attachment": _without_normalization,
    "environment memo and prepared parts (negative: what they save)": _without_memo,
}


#: Where the HTTP stack's own code lives (a path fragment of each module file).
_STACK = tuple(
    f"{os.sep}{name}{os.sep}"
    for name in ("requests", "urllib3", "resilient_session", "httpx", "httpcore", "h11")
)

#: The clients whose calls per GET are counted.
PROFILED = ("requests.Session", "ResilientSession (defaults)", "httpx.Client(HTTPTransport(retries=3))")


def _calls_per_get(get: Get) -> tuple[int, int]:
    """Python function calls of one warm *get()* on this thread: (all, in the HTTP stack's code).

    The fewest over five GETs: a GET that happens to open a connection or expire a cache is not typical.
    """
    return min((_calls_of_one(get) for _ in range(5)), key=lambda pair: pair[1])


def _calls_of_one(get: Get) -> tuple[int, int]:
    counts = [0, 0]

    def count(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            counts[0] += 1
            if any(part in frame.f_code.co_filename for part in _STACK):
                counts[1] += 1

    sys.setprofile(count)
    try:
        get()
    finally:
        sys.setprofile(None)
    return counts[0], counts[1]


def _batch(get: Get, n: int) -> float:
    """CPU seconds per call over *n* calls."""
    started = time.process_time()
    for _ in range(n):
        get()
    return (time.process_time() - started) / n


def _per_call_us(fn: Callable[[], Any], n: int = 50_000) -> float:
    """CPU microseconds of one *fn()*, best of five batches."""
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - started) / n)
    return best * 1e6


def _isolated() -> dict[str, float]:
    """Each default's own work on the call path, timed alone, without the network (microseconds)."""
    from resilient_session._call import CallState, enter, leave
    from resilient_session.normalization import with_normalized
    from resilient_session.observe.observer import _trace_for
    from resilient_session.observe.request_id import ensure_request_id as _ensure_request_id
    from resilient_session.stores import host_key

    session = ResilientSession()
    url = "http://127.0.0.1:8080/ping"
    prepared = requests.Request("GET", url).prepare()
    response = requests.Response()
    response.status_code = 200
    breaker, budget = session.breaker, session.budget
    assert breaker is not None and budget is not None
    host = host_key(url)
    call = CallState.begin("GET", url, default_timeout=(3.05, 30), owner=session)

    def breaker_cycle() -> None:
        permit = breaker.acquire(host, prepared)
        breaker.gate(permit)
        breaker.record(permit, response=response)

    def budget_cycle() -> None:
        budget.gate(host).record_success()

    def request_id() -> None:
        _ensure_request_id(prepared, "X-Request-ID")
        del prepared.headers["X-Request-ID"]

    def call_state() -> None:
        state = CallState.begin("GET", url, default_timeout=(3.05, 30), owner=session)
        state.tighten_deadline(None)
        leave(enter(state))

    plain = requests.Session()
    environment_ours = _per_call_us(
        lambda: (
            session.merge_environment_settings(url, {}, None, None, None),
            session.prepare_request(requests.Request("GET", url)),
        )
    )
    environment_requests = _per_call_us(
        lambda: (
            plain.merge_environment_settings(url, {}, None, None, None),
            plain.prepare_request(requests.Request("GET", url)),
        ),
        n=10_000,
    )
    return {
        "circuit breaker": _per_call_us(breaker_cycle),
        "retry budget": _per_call_us(budget_cycle),
        "request id header": _per_call_us(request_id),
        "tracing check (no provider installed)": _per_call_us(lambda: _trace_for(True, call, None, None)),
        "lazy .normalized attachment": _per_call_us(lambda: with_normalized(response)),
        "call/deadline state": _per_call_us(call_state),
        "environment memo and prepared parts (negative: what they save)": environment_ours
        - environment_requests,
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure and return the rows: peer ratios, our targets, and the per-feature costs."""
    rounds, per_round = (6, 150) if quick else (25, 300)
    context = multiprocessing.get_context("spawn")
    queue: Any = context.Queue()
    server = context.Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    # The session attaches a view after the fact to responses no ResilientAdapter built, which would
    # bill the no-attachment variant for an eager attachment: switched off for every client (the
    # defaults then skip one isinstance check, ~0.1 us).
    ensure_normalized = session_module.ensure_normalized
    session_module.ensure_normalized = lambda response: None  # type: ignore[assignment]
    try:
        url = f"http://127.0.0.1:{queue.get(timeout=30)}/ping"
        clients = {name: make(url) for name, make in PEERS.items()}
        variants = {name: make(url) for name, make in FEATURES.items()}
        for get in [*clients.values(), *variants.values()]:
            _batch(get, 100)  # warm up connections and code paths
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        names = list(clients)
        for i in range(rounds):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                cpu[name].append(_batch(clients[name], per_round))
        # Features: defaults and variant back to back, A B B A, so both halves see the same machine.
        defaults = clients["ResilientSession (defaults)"]
        costs: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, variant in variants.items():
                a1, b1 = _batch(defaults, per_round), _batch(variant, per_round)
                b2, a2 = _batch(variant, per_round), _batch(defaults, per_round)
                costs[name].append((a1 + a2 - b1 - b2) / 2)
        calls = {name: _calls_per_get(clients[name]) for name in PROFILED}
    finally:
        session_module.ensure_normalized = ensure_normalized  # type: ignore[assignment]
        server.terminate()
        server.join(5)

    baseline = cpu["requests.Session"]
    rows: list[dict[str, Any]] = [
        row("overhead", "environment variables in this process", len(os.environ), "", "", True),
        row("overhead", "requests.Session client CPU per GET", statistics.median(baseline) * 1e6, "us"),
    ]
    ratios = {
        name: statistics.median(b / c for b, c in zip(baseline, cpu[name], strict=True)) for name in PEERS
    }
    httpx_name = "httpx.Client(HTTPTransport(retries=3))"
    for name, ratio in ratios.items():
        target, met = "", True
        if name == "ResilientSession (defaults)":
            target = f">= {DEFAULTS_TARGET} and > httpx ({ratios[httpx_name]:.2f})"
            met = ratio >= DEFAULTS_TARGET and ratio > ratios[httpx_name]
        elif name.endswith(".normalized.data"):
            target, met = f">= {NORMALIZED_TARGET}", ratio >= NORMALIZED_TARGET
        rows.append(row("overhead", f"{name}: throughput vs requests.Session", ratio, "x", target, met))
        if name in calls:
            every, stack = calls[name]
            target, met = "", True
            if name == "ResilientSession (defaults)":
                own = calls["requests.Session"][1]
                target, met = f"<= requests ({own})", stack <= own
            rows.append(row("overhead", f"{name}: Python calls per GET, all", every, "calls"))
            rows.append(
                row("overhead", f"{name}: Python calls per GET, HTTP stack", stack, "calls", target, met)
            )

    ours = cpu["ResilientSession (defaults)"]
    ours_us = statistics.median(ours) * 1e6
    rows.append(row("overhead-features", "ResilientSession (defaults) client CPU per GET", ours_us, "us"))
    isolated = _isolated()
    for name in [*FEATURES, "call/deadline state"]:
        if name in costs:
            cost = statistics.median(costs[name]) * 1e6
            low, _, high = statistics.quantiles(costs[name], n=4)
            spread = (high - low) / 2 * 1e6  # half the interquartile range of the paired differences
            rows.append(
                row("overhead-features", f"{name}: toggled, cost per call (+/- {spread:.1f})", cost, "us")
            )
        if name in isolated:
            alone = isolated[name]
            rows.append(row("overhead-features", f"{name}: timed alone, cost per call", alone, "us"))
            rows.append(
                row("overhead-features", f"{name}: timed alone, share of a call", alone / ours_us * 100, "%")
            )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    print_table(run(quick=parser.parse_args().quick))
