"""One view of every response and every failure: status, format, parsed body, the API's error envelope."""

from __future__ import annotations

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
    "Format",
    "NormalizedError",
    "NormalizedResponse",
    "Normalizer",
    "ensure_normalized",
    "normalize",
    "with_normalized",
]
