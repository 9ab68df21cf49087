"""pytest plugin for running requests' own test suite, with or without ``ResilientSession`` swapped in.

Loaded with ``-p requests_swap`` by ``run_requests_suite.py`` (this folder on ``PYTHONPATH``). It

* with ``--resilient-swap``, replaces ``requests.Session`` everywhere requests' code and tests look it
  up (``requests.Session``, ``requests.sessions.Session``, ``requests.session()`` and
  ``requests.sessions.session()``; ``requests.api`` goes through ``requests.sessions.Session``) with
  :class:`~resilient_session.ResilientSession`, with its defaults;
* with ``--resilient-outcomes=FILE``, writes every test's outcome (and the first lines of each failure)
  to FILE as JSON, so two runs can be compared test by test;
* always refuses connections and name look-ups that would leave the machine (anything but loopback),
  recording which test tried, so a test that needs the outside world fails here instead of sending
  traffic, and the runner can tell that its deselection list needs a new entry.
"""

from __future__ import annotations

import json
import time
from typing import Any

import loopback_guard
import pytest

_state: dict[str, Any] = {"current": None, "blocked": loopback_guard.BLOCKED}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("requests_swap")
    group.addoption(
        "--resilient-swap",
        action="store_true",
        help="replace requests.Session with resilient_session.ResilientSession",
    )
    group.addoption(
        "--resilient-swap-options",
        metavar="JSON",
        default="{}",
        help="keyword arguments for the swapped-in ResilientSession, e.g. '{\"retry\": false}'",
    )
    group.addoption("--resilient-outcomes", metavar="FILE", help="write per-test outcomes to FILE (JSON)")
    group.addoption(
        "--resilient-deselect",
        action="append",
        default=[],
        metavar="NODEID",
        help="deselect this test (exact node id, or a node id without its [parameters])",
    )


def swap_session(options: dict[str, Any]) -> type:
    """Make every way requests and its tests create a session create a ResilientSession."""
    import requests
    import requests.sessions

    from resilient_session import ResilientSession

    swapped = ResilientSession
    if options:
        # Only for looking into a difference (say, ``{"retry": false}``); the comparison uses the defaults.
        class ConfiguredSession(ResilientSession):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**{**options, **kwargs})

        swapped = ConfiguredSession

    def session() -> ResilientSession:
        return swapped()

    requests.Session = swapped  # type: ignore[misc]
    requests.sessions.Session = swapped  # type: ignore[misc]
    requests.session = session
    requests.sessions.session = session
    return swapped


def pytest_configure(config: pytest.Config) -> None:
    swapped = None
    # JSON has no tuples: a list stands for one (``"timeout": [3.05, 60]``).
    options = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in json.loads(config.getoption("resilient_swap_options")).items()
    }
    if config.getoption("resilient_swap"):
        swapped = swap_session(options)
    import requests

    _state.update(
        swapped=f"{swapped.__module__}.{swapped.__qualname__}" if swapped else None,
        swap_options=options if swapped else None,
        requests_version=requests.__version__,
        requests_file=requests.__file__,
        resilient_session_plugin=config.pluginmanager.has_plugin("resilient_session.testing.pytest_plugin"),
        outcomes={},
        deselected=[],
        deselect_unmatched=[],
        started=time.monotonic(),
    )
    if swapped:
        import resilient_session

        _state["resilient_session_file"] = resilient_session.__file__


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Exact ids: pytest's own --deselect takes prefixes, so "test_proxy_error" would drop
    # "test_proxy_error_on_bad_url" too.
    wanted = set(config.getoption("resilient_deselect"))
    if not wanted:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (dropped if item.nodeid in wanted or item.nodeid.split("[", 1)[0] in wanted else keep).append(item)
    matched = {item.nodeid for item in dropped} | {item.nodeid.split("[", 1)[0] for item in dropped}
    _state["deselected"] = sorted(item.nodeid for item in dropped)
    _state["deselect_unmatched"] = sorted(wanted - matched)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _state["current"] = loopback_guard.CURRENT[0] = nodeid


def _failure_text(report: pytest.TestReport) -> str:
    text = report.longreprtext or ""
    crash = getattr(report.longrepr, "reprcrash", None)
    # The assertion or exception lines ("E   ...") and where they were raised, then the whole report.
    lines = [line for line in text.splitlines() if line.startswith("E ")]
    head = "\n".join(lines[:12])
    where = f"{crash.path}:{crash.lineno}" if crash is not None else ""
    return f"{where}\n{head}".strip() if head else text[-2000:]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    outcomes: dict[str, dict[str, Any]] = _state["outcomes"]
    entry = outcomes.setdefault(report.nodeid, {"outcome": None, "duration": 0.0})
    entry["duration"] += report.duration
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            entry["outcome"] = "xfailed" if report.skipped else "xpassed"
        else:
            entry["outcome"] = report.outcome
        if report.failed:
            entry["failure"] = _failure_text(report)
    elif report.failed:  # setup or teardown
        if entry["outcome"] != "failed":
            entry["outcome"] = "error"
        entry.setdefault("failure", f"[{report.when}] " + _failure_text(report))
    elif report.skipped and report.when == "setup":
        entry["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _state.setdefault("collection_errors", []).append(
            {"nodeid": report.nodeid, "failure": (report.longreprtext or "")[-2000:]}
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("resilient_outcomes")
    if not path:
        return
    result = {key: value for key, value in _state.items() if key not in ("current", "started")}
    result["exitstatus"] = int(exitstatus)
    result["seconds"] = round(time.monotonic() - _state["started"], 2)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)
