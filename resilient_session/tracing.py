"""Deprecated alias of :mod:`resilient_session.observe.tracing`, kept for one release."""

from __future__ import annotations

import warnings

from .observe.tracing import (  # noqa: F401
    _DEFAULT_PORTS,
    _KNOWN_METHODS,
    _NAME,
    CallTrace,
    _cached,
    _describe,
    _finish,
    _http_attributes,
    tracer_for,
)

warnings.warn(
    "resilient_session.tracing moved to resilient_session.observe.tracing",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["CallTrace", "tracer_for"]
