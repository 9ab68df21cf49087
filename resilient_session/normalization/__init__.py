"""One view of every response and every failure: status, format, parsed body, the API's error envelope."""

from __future__ import annotations

from .drift import DriftPolicy, Mismatch, SchemaDrift, reset_drift_warnings
from .view import (
    DEFAULT_MAX_BODY_SIZE,
    REQUEST_ID_HEADERS,
    Format,
    NormalizedError,
    NormalizedResponse,
    Normalizer,
    ensure_normalized,
    normalize,
    with_normalized,
)

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "REQUEST_ID_HEADERS",
    "DriftPolicy",
    "Format",
    "Mismatch",
    "NormalizedError",
    "NormalizedResponse",
    "Normalizer",
    "SchemaDrift",
    "ensure_normalized",
    "normalize",
    "reset_drift_warnings",
    "with_normalized",
]
