"""pytest plugin used by ``tests/compat/run_clients.py``: swap ``requests.Session``, count what we saw.

Loaded with ``-p clients_swap`` (the runner puts this folder on ``PYTHONPATH``). ``-p`` plugins are
imported before conftest files, entry-point plugins and test modules, so the swap happens before the
client under test is imported. Environment:

``RS_COMPAT_SWAP``
    ``1``: replace ``requests.Session`` and ``requests.sessions.Session`` (which ``requests.session()``
    uses) with :class:`resilient_session.ResilientSession`; after collection, every module attribute
    still bound to the original class (``from requests import Session`` done early) is rebound too.
    ``0``: change nothing, only record outcomes (the plain run).
``RS_COMPAT_OUT``
    Where to write the JSON results: per test its outcome, the first lines of its failure, and, when
    swapped, how many calls went through a ``ResilientSession`` (counted with ``session.events``), how
    many reached the circuit breaker (``CircuitBreaker.acquire``) and the retry budget
    (``RetryBudget.gate``, which the adapter asks for once per guarded call), and which retries of a
    502/503/504 our policy made (``on_retry`` events).

The library is not modified: the counters wrap methods on the classes at run time.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Generator
from typing import Any

import pytest
import requests
import requests.sessions

_ORIGINAL_SESSION = requests.Session
SWAP = os.environ.get("RS_COMPAT_SWAP") == "1"
OUT = os.environ.get("RS_COMPAT_OUT")

_counts: dict[str, Any] = {}
_results: dict[str, dict[str, Any]] = {}
_rebound: list[str] = []


def _reset_counts() -> None:
    _counts.clear()
    _counts.update(calls=0, breaker=0, budget=0, retried_gateway=[])


_reset_counts()


def _counting(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _counts[name] += 1
        return method(*args, **kwargs)

    return wrapper


def _install_swap() -> None:
    from resilient_session import CircuitBreaker, ResilientSession, RetryBudget

    original_init = ResilientSession.__init__

    @functools.wraps(original_init)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        events = getattr(self, "events", None)
        if events is None:
            return

        def on_request(event: Any) -> None:
            _counts["calls"] += 1

        def on_retry(event: Any) -> None:
            if event.status in (502, 503, 504):
                _counts["retried_gateway"].append(f"{event.method} {event.status}")

        events.on_request(on_request)
        events.on_retry(on_retry)

    ResilientSession.__init__ = init  # type: ignore[method-assign]
    CircuitBreaker.acquire = _counting("breaker", CircuitBreaker.acquire)  # type: ignore[method-assign]
    RetryBudget.gate = _counting("budget", RetryBudget.gate)  # type: ignore[method-assign]
    requests.Session = ResilientSession  # type: ignore[misc]
    requests.sessions.Session = ResilientSession  # type: ignore[misc]


if SWAP:
    _install_swap()


def _rebind_stale_references() -> None:
    """Rebind module attributes that still hold the original class (imported before the swap)."""
    swapped = requests.Session
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name == __name__:
            continue
        try:
            attributes = list(vars(module).items())
        except TypeError:
            continue
        for attribute, value in attributes:
            if value is _ORIGINAL_SESSION:
                setattr(module, attribute, swapped)
                _rebound.append(f"{module_name}.{attribute}")


def pytest_collection_finish(session: pytest.Session) -> None:
    if SWAP:
        _rebind_stale_references()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    _reset_counts()
    _results[item.nodeid] = {"outcome": "passed", "failure": []}
    yield
    entry = _results[item.nodeid]
    entry.update(
        calls=_counts["calls"],
        breaker=_counts["breaker"],
        budget=_counts["budget"],
        retried_gateway=sorted(set(_counts["retried_gateway"])),
    )


def _first_lines(report: pytest.TestReport, limit: int = 6) -> list[str]:
    text = report.longreprtext or ""
    errors = [line for line in text.splitlines() if line.startswith("E ")]
    lines = errors or text.splitlines()[-limit:]
    crash = getattr(report.longrepr, "reprcrash", None)
    where = [f"at {crash.path}:{crash.lineno}"] if crash is not None else []
    return [line.rstrip()[:200] for line in lines[:limit]] + where


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _results.setdefault(report.nodeid, {"outcome": "passed", "failure": []})
    if report.failed:
        if entry["outcome"] != "failed":
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["failure"] = [f"[{report.when}]", *_first_lines(report)]
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not OUT:
        return
    plain_subclasses = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _ORIGINAL_SESSION.__subclasses__()
        if cls is not requests.Session and not cls.__module__.startswith("resilient_session")
    )
    payload = {
        "swap": SWAP,
        "exitstatus": int(exitstatus),
        "rebound": sorted(set(_rebound)),
        "plain_subclasses": plain_subclasses,
        "tests": _results,
    }
    with open(OUT, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1, sort_keys=True)
