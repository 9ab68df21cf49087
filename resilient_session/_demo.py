"""Deprecated alias of :mod:`resilient_session.cli.demo`, kept for one release."""

from __future__ import annotations

import warnings

from .cli.demo import (  # noqa: F401
    _DEAD_HOST,
    _SLOW,
    BREAKER_FAILURES,
    BREAKER_OPEN_WAIT,
    DEADLINE,
    HUNG,
    OK,
    SCRIPT,
    TIMEOUT,
    WATCHDOG,
    Client,
    Outcome,
    SideResult,
    Step,
    _breakdown,
    _hung,
    _plain_client,
    _Progress,
    _resilient_client,
    _run_side,
    _table,
    _watched,
    render,
    run_demo,
)

warnings.warn(
    "resilient_session._demo moved to resilient_session.cli.demo",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["SCRIPT", "Outcome", "SideResult", "Step", "render", "run_demo"]
