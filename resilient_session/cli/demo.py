"""The ``resilient-session demo`` workload: one script of misbehaving calls, run with both clients.

Everything happens on loopback: a chaos server plays a flaky API, a second one plays a dead host (it
accepts requests and never answers). Plain ``requests`` has no timeout, so each call runs under a
watchdog that counts it as *hung* once it has taken longer than :data:`WATCHDOG` seconds; the hung call's
thread is a daemon and is released (with a reset) when the servers stop.
"""

from __future__ import annotations

import logging
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import requests

from ..errors import APIError
from ..policies.breaker import CircuitBreaker, StateChange
from ..session import ResilientSession
from ..testing.chaos import ChaosServer

__all__ = ["SCRIPT", "Outcome", "SideResult", "Step", "render", "run_demo"]

#: Seconds after which a call counts as hung (plain requests would wait forever).
WATCHDOG = 2.0

#: The ResilientSession side's settings, shown in the report. Its deadline stays under the watchdog; the
#: breaker's open wait stands for "longer than this demo" (the default, 5 s, is about its length).
TIMEOUT = (0.5, 0.75)
DEADLINE = 1.5
BREAKER_FAILURES = 2
BREAKER_OPEN_WAIT = 30.0

HUNG = "hung"
OK = "ok"


@dataclass(frozen=True)
class Step:
    """One call of the script: a chaos-server path, or the dead host when ``path`` is ``None``."""

    scenario: str
    path: str | None


_SLOW = Step("slow API (50-300 ms)", "/latency?min_ms=50&max_ms=300&seed=7")
_DEAD_HOST = Step("dead host (accepts, never answers)", None)

#: The workload: a service calling a flaky API and, now and then, a dead one. Each call that fails for
#: good is followed by one that succeeds, so only the dead host's circuit opens.
SCRIPT: tuple[Step, ...] = (
    _SLOW,
    _SLOW,
    _DEAD_HOST,
    Step("503, 503, then 200", "/fail/503?times=2"),
    Step("slow API that hangs once", "/hang?times=1"),
    _DEAD_HOST,
    Step("429 with Retry-After: 1, then 200", "/fail/429?times=1&retry_after=1"),
    Step("connection reset, then 200", "/reset?times=1"),
    _DEAD_HOST,
    Step("reset mid-body, then 200", "/reset-body?times=1"),
    Step("500 Internal Server Error", "/fail/500"),
    _DEAD_HOST,
    Step("malformed JSON body", "/malformed-json"),
    Step("truncated body (lying Content-Length)", "/truncated"),
    _DEAD_HOST,
    Step("502, then 200", "/fail/502?times=1"),
    Step("stalled body", "/stall"),
    _DEAD_HOST,
    _SLOW,
)


@dataclass(frozen=True)
class Outcome:
    """What one call came to: ``"ok"``, ``"hung"``, or the name of the exception raised."""

    label: str
    typed: bool = False

    @property
    def ok(self) -> bool:
        return self.label == OK


@dataclass
class SideResult:
    """One client's run of the script."""

    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    wall_time: float = 0.0
    dead_host_hits: int = 0
    events: list[str] = field(default_factory=list)

    def count(self, predicate: Callable[[Outcome], bool]) -> int:
        return sum(1 for outcome in self.outcomes if predicate(outcome))


Client = Callable[[str], None]


def _plain_client(session: requests.Session) -> Client:
    """What most integration code does with requests today."""

    def call(url: str) -> None:
        response = session.get(url)
        response.raise_for_status()
        response.json()

    return call


def _resilient_client(session: ResilientSession) -> Client:
    """The same call with ResilientSession: statuses raise typed errors, the body is read normalized."""

    def call(url: str) -> None:
        response = session.get(url)
        response.normalized.raise_for_error()  # type: ignore[attr-defined]

    return call


def _watched(call: Client, url: str, watchdog: float) -> Outcome:
    """Run *call* in a daemon thread; give up on it after *watchdog* seconds."""
    result: list[Outcome] = []

    def target() -> None:
        try:
            call(url)
        except Exception as error:
            result.append(Outcome(type(error).__name__, typed=isinstance(error, APIError)))
        else:
            result.append(Outcome(OK))

    worker = threading.Thread(target=target, name="demo-call", daemon=True)
    worker.start()
    worker.join(watchdog)
    return result[0] if result else Outcome(HUNG)


class _Progress:
    """A one-line progress bar on a terminal; a single summary line otherwise."""

    def __init__(self, stream: TextIO, total: int, enabled: bool) -> None:
        self.stream = stream
        self.total = total
        self.enabled = enabled
        self.live = enabled and stream.isatty()

    def update(self, side: str, done: int, scenario: str) -> None:
        if not self.live:
            return
        width = 24
        filled = width * done // self.total
        bar = "#" * filled + "." * (width - filled)
        line = f"{side:<17} [{bar}] {done:>2}/{self.total} {scenario}"
        self.stream.write("\r" + line[:100].ljust(100))
        self.stream.flush()

    def finish(self, side: str, seconds: float) -> None:
        if not self.enabled:
            return
        line = f"{side:<17} [{'#' * 24}] {self.total:>2}/{self.total} done in {seconds:.1f} s"
        self.stream.write(("\r" + line.ljust(100) if self.live else line) + "\n")
        self.stream.flush()


def _run_side(
    name: str,
    client: Client,
    chaos: ChaosServer,
    dead: ChaosServer,
    script: Sequence[Step],
    watchdog: float,
    progress: _Progress,
) -> SideResult:
    chaos.reset()
    dead.reset()
    side = SideResult(name)
    started = time.monotonic()
    for done, step in enumerate(script):
        progress.update(name, done, step.scenario)
        url = dead.url + "/hang" if step.path is None else chaos.url + step.path
        side.outcomes.append(_watched(client, url, watchdog))
    side.wall_time = time.monotonic() - started
    side.dead_host_hits = dead.calls("/hang")
    progress.finish(name, side.wall_time)
    return side


def run_demo(
    *,
    script: Sequence[Step] = SCRIPT,
    watchdog: float = WATCHDOG,
    progress: bool = True,
    stream: TextIO | None = None,
) -> tuple[SideResult, SideResult]:
    """Run *script* with plain requests, then with ResilientSession; return both results."""
    bar = _Progress(stream or sys.stderr, len(script), progress)
    transitions: list[StateChange] = []
    # The breaker's WARNING would reach stderr through logging's last resort and break the progress
    # bar; the report lists the transitions instead.
    logger = logging.getLogger("resilient_session")
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    try:
        with ChaosServer() as chaos, ChaosServer() as dead:
            with requests.Session() as plain:
                before = _run_side(
                    "requests.Session", _plain_client(plain), chaos, dead, script, watchdog, bar
                )
            breaker = CircuitBreaker(
                consecutive_failures=BREAKER_FAILURES,
                open_wait=BREAKER_OPEN_WAIT,
                listeners=(transitions.append,),
            )
            with ResilientSession(
                timeout=TIMEOUT, deadline=DEADLINE, raise_for_status=True, breaker=breaker
            ) as ours:
                after = _run_side(
                    "ResilientSession", _resilient_client(ours), chaos, dead, script, watchdog, bar
                )
            names = {chaos.url: "the flaky API", dead.url: "the dead host"}
    finally:
        logger.removeHandler(quiet)
    after.events = [
        f"circuit of {names.get(change.host, change.host)}: {change.old.value} -> {change.new.value} "
        f"({change.reason})"
        for change in transitions
    ]
    return before, after


def _breakdown(outcomes: Sequence[Outcome]) -> str:
    counts = Counter(outcome.label for outcome in outcomes)
    return ", ".join(label if n == 1 else f"{label} x{n}" for label, n in counts.items())


def _table(rows: Sequence[Sequence[object]], first: int) -> list[str]:
    """Rows as text: the first column left-aligned in *first* characters, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(1, len(rows[0]))]
    rule = ["-" * first, *("-" * w for w in widths)]
    lines = []
    for row in [rows[0], rule, *rows[1:]]:
        cells = [str(row[0]).ljust(first), *(str(c).rjust(w) for c, w in zip(row[1:], widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _hung(outcome: Outcome) -> bool:
    return outcome.label == HUNG


def render(
    before: SideResult, after: SideResult, script: Sequence[Step] = SCRIPT, watchdog: float = WATCHDOG
) -> str:
    """The report: per-scenario outcomes, the side-by-side summary, breaker events and a conclusion."""
    scenarios: dict[str, list[int]] = {}
    for index, step in enumerate(script):
        scenarios.setdefault(step.scenario, []).append(index)
    header = ("", before.name, after.name)
    first = max(len(s) for s in scenarios) + 5

    per_scenario: list[Sequence[object]] = [("scenario (calls)", before.name, after.name)]
    for scenario, indexes in scenarios.items():
        per_scenario.append(
            (
                f"{scenario} ({len(indexes)})",
                _breakdown([before.outcomes[i] for i in indexes]),
                _breakdown([after.outcomes[i] for i in indexes]),
            )
        )

    total = len(script)
    metrics: list[tuple[str, Callable[[SideResult], object]]] = [
        ("calls succeeded", lambda s: f"{s.count(lambda o: o.ok)}/{total}"),
        ("typed errors (APIError)", lambda s: s.count(lambda o: o.typed)),
        ("raw errors", lambda s: s.count(lambda o: not (o.ok or o.typed or _hung(o)))),
        (f"hangs (no answer after {watchdog:g} s)", lambda s: s.count(_hung)),
        ("wall time", lambda s: f"{s.wall_time:.1f} s"),
        ("requests that hit the dead host", lambda s: s.dead_host_hits),
    ]
    summary: list[Sequence[object]] = [header, *((label, f(before), f(after)) for label, f in metrics)]

    avoided = before.count(_hung) - after.count(_hung)
    conclusion = (
        f"ResilientSession(timeout={TIMEOUT}, deadline={DEADLINE:g}, raise_for_status=True, "
        f"breaker=CircuitBreaker(consecutive_failures={BREAKER_FAILURES}, open_wait={BREAKER_OPEN_WAIT:g})) "
        f"avoided {avoided} hangs. Every failure it could not retry away is a typed APIError that is also "
        "the requests exception plain code catches today. Plain requests has no default timeout: its hung "
        "calls would have waited forever. No network was used: both servers ran on 127.0.0.1."
    )
    return "\n".join(
        [
            *_table(per_scenario, first),
            "",
            *_table(summary, first),
            "",
            *(f"{after.name} {event}" for event in after.events),
            "",
            *textwrap.wrap(conclusion, width=100),
        ]
    )
