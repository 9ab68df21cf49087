"""Deprecated alias of :mod:`resilient_session.policies.breaker`, kept for one release."""

from __future__ import annotations

import warnings

from .policies.breaker import (  # noqa: F401
    _STATES,
    DEFAULT_FAILURE_EXCEPTIONS,
    DEFAULT_FAILURE_STATUSES,
    BreakerSnapshot,
    CircuitBreaker,
    CircuitState,
    ErrorTypes,
    Permit,
    StateChange,
    _no_retry,
    _open_error,
    log,
)
from .policies.circuit import (  # noqa: F401
    _ACQUIRE,
    _RECORD,
    _RESET,
    _SNAPSHOT,
    _acquire_py,
    _Circuit,
    _close,
    _describe,
    _open_wait,
    _record_py,
    _reply,
    _reset_py,
    _snapshot_py,
    _trip,
)

warnings.warn(
    "resilient_session.breaker moved to resilient_session.policies.breaker",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["BreakerSnapshot", "CircuitBreaker", "CircuitState", "Permit", "StateChange"]
