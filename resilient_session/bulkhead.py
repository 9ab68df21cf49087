"""Deprecated alias of :mod:`resilient_session.policies.bulkhead`, kept for one release."""

from __future__ import annotations

import warnings

from .policies.bulkhead import (
    Bulkhead as Bulkhead,
)
from .policies.bulkhead import (
    _Compartment as _Compartment,
)
from .policies.bulkhead import (
    _new_bulkhead as _new_bulkhead,
)

warnings.warn(
    "resilient_session.bulkhead moved to resilient_session.policies.bulkhead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["Bulkhead"]
