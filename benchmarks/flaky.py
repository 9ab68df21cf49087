"""Success rate through a flaky upstream: plain requests vs ResilientSession.

The chaos server answers 20% of requests with 503 and resets 5% of connections, in a seeded (reproducible)
sequence. Each client makes the same number of GETs; a call succeeds when it ends with a 200. Target:
ResilientSession with 5 retries succeeds on at least 99.9% of calls. The default policy (3 retries) is
shown too: with a 25% failure rate a call fails 4 times in a row 0.25**4 = 0.4% of the time, so 3 retries
cannot reach 99.9% whatever the implementation.

Backoff is shortened to a 2 ms base: the failures follow the request sequence, not the clock, so waiting
would change nothing but the run time.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from typing import Any

import requests

from resilient_session import ResilientSession, RetryPolicy
from resilient_session.testing.chaos import ChaosServer

try:
    from ._common import print_table, row
except ImportError:  # run as a script (python benchmarks/NAME.py): the folder is on sys.path
    from _common import print_table, row  # type: ignore[no-redef]

TARGET = 0.999
CALLS, QUICK_CALLS = 2000, 200
ROUTE = "/flaky?rate=0.2&reset_rate=0.05&status=503&seed=20"
BACKOFF = 0.002


def _success_rate(session: requests.Session, url: str, calls: int) -> float:
    succeeded = 0
    for _ in range(calls):
        with contextlib.suppress(requests.RequestException):
            succeeded += session.get(url, timeout=(2, 5)).status_code == 200
    return succeeded / calls


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure and return the rows: each client's success rate and the upstream load it caused."""
    calls = QUICK_CALLS if quick else CALLS
    clients = {
        "requests.Session": requests.Session,
        "ResilientSession (default, 3 retries)": lambda: ResilientSession(
            retry=RetryPolicy(backoff_factor=BACKOFF)
        ),
        "ResilientSession (5 retries)": lambda: ResilientSession(
            retry=RetryPolicy(5, backoff_factor=BACKOFF)
        ),
    }
    rows = []
    # ~600 retry warnings would bury the table; the upstream-load row counts the retries instead.
    logger = logging.getLogger("resilient_session")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        stack.callback(logger.setLevel, level)
        chaos = stack.enter_context(ChaosServer())
        for name, make in clients.items():
            chaos.reset()  # every client meets the same sequence of failures
            with make() as session:
                rate = _success_rate(session, chaos.url + ROUTE, calls)
            load = chaos.calls("/flaky") / calls
            target = f">= {TARGET:.1%}" if name.endswith("(5 retries)") else ""
            rows.append(
                row("flaky", f"success rate, {name}", 100 * rate, "%", target, rate >= TARGET or not target)
            )
            rows.append(row("flaky", f"upstream requests per call, {name}", load, "x", "", True))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_CALLS} calls per client instead of {CALLS}"
    )
    print_table(run(quick=parser.parse_args().quick))


if __name__ == "__main__":
    main()
