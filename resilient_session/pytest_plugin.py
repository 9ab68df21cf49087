"""Deprecated alias of :mod:`resilient_session.testing.pytest_plugin`, kept for one release."""

from __future__ import annotations

import warnings

from .testing.pytest_plugin import (  # noqa: F401
    _SLEEPING_MODULES,
    SkippedSleeps,
    _InstantTime,
    _resilient_session_chaos_server,
    _resilient_session_clean_state,
    chaos_server,
    chaos_session,
    no_backoff,
    pytest_configure,
    resilient_session,
)

warnings.warn(
    "resilient_session.pytest_plugin moved to resilient_session.testing.pytest_plugin",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["SkippedSleeps", "chaos_server", "chaos_session", "no_backoff", "resilient_session"]
