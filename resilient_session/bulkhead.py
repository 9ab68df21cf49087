"""Deprecated alias of :mod:`resilient_session.policies.bulkhead`, kept for one release."""

from __future__ import annotations

import warnings

from .policies.bulkhead import Bulkhead, _Compartment, _new_bulkhead  # noqa: F401

warnings.warn(
    "resilient_session.bulkhead moved to resilient_session.policies.bulkhead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["Bulkhead"]
