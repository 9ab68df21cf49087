"""Deprecated alias of :mod:`resilient_session.observe.tracing`, kept for one release."""

from __future__ import annotations

import warnings

from .observe.tracing import (
    _DEFAULT_PORTS as _DEFAULT_PORTS,
)
from .observe.tracing import (
    _KNOWN_METHODS as _KNOWN_METHODS,
)
from .observe.tracing import (
    _NAME as _NAME,
)
from .observe.tracing import (
    CallTrace as CallTrace,
)
from .observe.tracing import (
    _cached as _cached,
)
from .observe.tracing import (
    _describe as _describe,
)
from .observe.tracing import (
    _finish as _finish,
)
from .observe.tracing import (
    _http_attributes as _http_attributes,
)
from .observe.tracing import (
    tracer_for as tracer_for,
)

warnings.warn(
    "resilient_session.tracing moved to resilient_session.observe.tracing",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["CallTrace", "tracer_for"]
