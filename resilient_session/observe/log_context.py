"""Call context on log records: every record of the package's loggers carries the structured fields."""

from __future__ import annotations

import logging

from .._call import current_call
from .request_id import bound_request_id

__all__ = ["CallContextFilter"]


_FIELDS = (
    "integration",
    "method",
    "url",
    "status",
    "attempt",
    "elapsed_ms",
    "outcome",
    "error_type",
    "request_id",
    "breaker_state",
)


class CallContextFilter(logging.Filter):
    """Gives every record of the package's loggers all the structured fields, so a format string or a
    JSON formatter can name them: absent ones are ``None``, ``integration`` and ``request_id`` come from
    the call in progress. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if "request_id" not in fields or "integration" not in fields:
            call = current_call()
            extras = call.extras if call is not None else {}
            fields.setdefault("request_id", extras.get("request_id") or bound_request_id())
            fields.setdefault("integration", extras.get("integration"))
        for name in _FIELDS:
            fields.setdefault(name, None)
        return True


_context_filter = CallContextFilter()
for _name in ("resilient_session", "resilient_session.auth", "resilient_session.oauth2"):
    if not any(isinstance(f, CallContextFilter) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(_context_filter)
