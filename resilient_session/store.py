"""Deprecated alias of :mod:`resilient_session.stores.base`, kept for one release."""

from __future__ import annotations

import warnings

from .stores.base import (  # noqa: F401
    _DEFAULT_PORTS,
    AtomicOp,
    MemoryStore,
    Result,
    StateStore,
    _live_memory_stores,
    _new_memory_store,
    _origin_key,
    clear_memory_stores,
    host_key,
)

warnings.warn(
    "resilient_session.store moved to resilient_session.stores.base",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["AtomicOp", "MemoryStore", "StateStore", "host_key"]
