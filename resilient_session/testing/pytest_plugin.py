"""pytest fixtures for code that calls external APIs.

Opt-in: ``pytest_plugins = ["resilient_session.testing.pytest_plugin"]`` in a suite's root
``conftest.py``, or ``pytest -p resilient_session.testing.pytest_plugin``.

``chaos_server``
    A running :class:`~resilient_session.testing.chaos.ChaosServer` (one per test session, counters reset for
    every test). Needs Flask: ``pip install "resilient-session[test]"``.
``no_backoff``
    Retries still happen, but their waits (backoff and ``Retry-After``) take no time. Yields a
    :class:`SkippedSleeps` listing the waits that were skipped, so a test can still assert on them.
``chaos_session``
    A :class:`~resilient_session.ResilientSession` whose ``base_url`` is the chaos server.
``resilient_session``
    The old name of ``chaos_session`` (it shadowed the package's name); deprecated, it warns.

Between tests (autouse, for every test of a suite that loaded the plugin) it also resets process-wide
state: it clears in-memory circuit-breaker and retry-budget state (the process-wide
:func:`~resilient_session.stores.default_store` included), so a circuit one test opened (say, on a
module-level session or through sessions made per call) never refuses the next test's calls, and it puts
the integrations registry (:mod:`resilient_session.registry`) back as it was before the test: what a
test registered or unregistered is undone, what was registered before it (at import, in a conftest) stays.
Likewise :func:`~resilient_session.install`: a test that called it (or ``uninstall()``) leaves requests as
the test found it. It also forgets which schema-drift WARNINGs were logged, so each test sees its own.
Redis-backed state is not touched.

Installing the package registers nothing with pytest; this module imports nothing beyond pytest until a
fixture is used.
"""

from __future__ import annotations

import importlib
import sys
import time
import types
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..session import ResilientSession
    from .chaos import ChaosServer

__all__ = ["SkippedSleeps", "chaos_server", "chaos_session", "no_backoff", "resilient_session"]

# Modules whose ``time.sleep`` performs retry waits: the session's attempt loop, and urllib3's (a plain
# requests adapter's Retry).
_SLEEPING_MODULES = ("resilient_session._attempts", "urllib3.util.retry")


class SkippedSleeps(list[float]):
    """The retry waits, in seconds, that :func:`no_backoff` skipped, in order."""

    @property
    def total(self) -> float:
        """Seconds the test would have slept."""
        return sum(self)


class _InstantTime(types.ModuleType):
    """Stands in for the ``time`` module of a retry module: ``sleep`` records instead of waiting."""

    def __init__(self, skipped: SkippedSleeps) -> None:
        super().__init__("time")
        self._skipped = skipped

    def sleep(self, seconds: float) -> None:
        self._skipped.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker docs/testing.md suggests for chaos-server tests (so ``--strict-markers`` passes)."""
    config.addinivalue_line("markers", "integration: talks to a real server on 127.0.0.1 (e.g. chaos_server)")


@pytest.fixture(autouse=True)
def _resilient_session_clean_state() -> Iterator[None]:
    registry = sys.modules.get("resilient_session.registry")
    saved = registry.snapshot() if registry is not None else None
    switch = sys.modules.get("resilient_session._install")
    installed = switch.state() if switch is not None else (False, False)
    yield
    switch = sys.modules.get("resilient_session._install")
    if switch is not None and switch.state() != installed:
        on, all_origins = installed
        if on:
            switch.install(all_origins=all_origins)
        else:
            switch.uninstall()  # the test called install(): requests is as the test found it
    # Looked up, not imported: nothing to reset when the test run never imported us.
    registry = sys.modules.get("resilient_session.registry")
    if registry is not None:
        if saved is not None:
            registry.restore(saved)
        else:
            registry.reset()  # imported during this test: whatever it registered was this test's
    store = sys.modules.get("resilient_session.stores.memory")
    if store is not None:
        store.clear_memory_stores()  # the process-wide default store included
    drift = sys.modules.get("resilient_session.normalization.drift")
    if drift is not None:
        drift.reset_drift_warnings()


@pytest.fixture(scope="session")
def _resilient_session_chaos_server() -> Iterator[ChaosServer]:
    chaos = pytest.importorskip("resilient_session.testing.chaos", reason="the chaos server needs Flask")
    with chaos.ChaosServer() as server:
        yield server


@pytest.fixture
def chaos_server(_resilient_session_chaos_server: ChaosServer) -> ChaosServer:
    """A running chaos server on 127.0.0.1 with fresh call counters; use ``chaos_server.url``."""
    _resilient_session_chaos_server.reset()
    return _resilient_session_chaos_server


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> SkippedSleeps:
    """Make retry waits instant for this test; returns the list of waits skipped."""
    skipped = SkippedSleeps()
    instant = _InstantTime(skipped)
    for name in _SLEEPING_MODULES:
        monkeypatch.setattr(importlib.import_module(name), "time", instant)
    return skipped


@pytest.fixture
def chaos_session(chaos_server: ChaosServer) -> Iterator[ResilientSession]:
    """A :class:`~resilient_session.ResilientSession` with ``base_url`` set to the chaos server."""
    from ..session import ResilientSession

    with ResilientSession(base_url=chaos_server.url) as session:
        yield session


@pytest.fixture
def resilient_session(chaos_session: ResilientSession) -> ResilientSession:
    """Deprecated name of :func:`chaos_session` (it shadowed the package's name in a test module)."""
    warnings.warn(
        "the resilient_session fixture is renamed chaos_session; the old name goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return chaos_session
