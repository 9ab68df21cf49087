"""What a session reports: call events, request ids, log records and their redaction, tracing spans."""

from __future__ import annotations

from .events import BudgetExhausted, CallEvent, Events
from .log_context import CallContextFilter
from .logging import redact_library_logs
from .request_id import DEFAULT_REQUEST_ID_HEADER, bind_request_id, current_request_id

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
