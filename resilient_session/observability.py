"""Deprecated alias of :mod:`resilient_session.observe.events`, kept for one release."""

from __future__ import annotations

import warnings

from .observe.events import (  # noqa: F401
    _FIELDS,
    _KINDS,
    DEFAULT_REQUEST_ID_HEADER,
    BudgetExhausted,
    Callback,
    CallContextFilter,
    CallEvent,
    Events,
    _Attempt,
    _context_filter,
    _ensure_request_id,
    _Observer,
    _plural,
    _random_bits,
    _trace_for,
    begin_call,
    bind_request_id,
    current_request_id,
    end_call,
    log,
    report_refused,
)

warnings.warn(
    "resilient_session.observability moved to resilient_session.observe.events",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "DEFAULT_REQUEST_ID_HEADER",
    "BudgetExhausted",
    "CallContextFilter",
    "CallEvent",
    "Events",
    "bind_request_id",
    "current_request_id",
]
