"""What a session reports: call events, request ids, log records and their redaction, tracing spans."""

from __future__ import annotations

from .events import (
    DEFAULT_REQUEST_ID_HEADER,
    BudgetExhausted,
    CallContextFilter,
    CallEvent,
    Events,
    bind_request_id,
    current_request_id,
)
from .logging import redact_library_logs

__all__ = [
    "DEFAULT_REQUEST_ID_HEADER",
    "BudgetExhausted",
    "CallContextFilter",
    "CallEvent",
    "Events",
    "bind_request_id",
    "current_request_id",
    "redact_library_logs",
]
