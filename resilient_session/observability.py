"""Deprecated alias of :mod:`resilient_session.observe.events`, kept for one release."""

from __future__ import annotations

import warnings

from .observe.events import (
    _FIELDS as _FIELDS,
)
from .observe.events import (
    _KINDS as _KINDS,
)
from .observe.events import (
    DEFAULT_REQUEST_ID_HEADER as DEFAULT_REQUEST_ID_HEADER,
)
from .observe.events import (
    BudgetExhausted as BudgetExhausted,
)
from .observe.events import (
    Callback as Callback,
)
from .observe.events import (
    CallContextFilter as CallContextFilter,
)
from .observe.events import (
    CallEvent as CallEvent,
)
from .observe.events import (
    Events as Events,
)
from .observe.events import (
    _Attempt as _Attempt,
)
from .observe.events import (
    _bound_request_id as _bound_request_id,
)
from .observe.events import (
    _context_filter as _context_filter,
)
from .observe.events import (
    _ensure_request_id as _ensure_request_id,
)
from .observe.events import (
    _Observer as _Observer,
)
from .observe.events import (
    _plural as _plural,
)
from .observe.events import (
    _random_bits as _random_bits,
)
from .observe.events import (
    _trace_for as _trace_for,
)
from .observe.events import (
    begin_call as begin_call,
)
from .observe.events import (
    bind_request_id as bind_request_id,
)
from .observe.events import (
    current_request_id as current_request_id,
)
from .observe.events import (
    end_call as end_call,
)
from .observe.events import (
    log as log,
)
from .observe.events import (
    report_refused as report_refused,
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
