"""Deprecated alias of :mod:`resilient_session.observe.events`, kept for one release."""

from __future__ import annotations

import warnings

from .observe.events import (  # noqa: F401
    _KINDS,
    BudgetExhausted,
    Callback,
    CallEvent,
    Events,
    log,
)
from .observe.log_context import _FIELDS, CallContextFilter, _context_filter  # noqa: F401
from .observe.observer import (  # noqa: F401
    _Attempt,
    _Observer,
    _plural,
    _trace_for,
    begin_call,
    end_call,
    report_refused,
)
from .observe.request_id import (  # noqa: F401
    DEFAULT_REQUEST_ID_HEADER,
    _new_request_id,
    _random_bits,
    bind_request_id,
    current_request_id,
)
from .observe.request_id import ensure_request_id as _ensure_request_id  # noqa: F401

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
