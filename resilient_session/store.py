"""Deprecated alias of :mod:`resilient_session.stores` (`base` and `memory`), kept for one release."""

from __future__ import annotations

import warnings

from ._hosts import _DEFAULT_PORTS, _origin_key, host_key  # noqa: F401
from .stores.base import AtomicOp, Result, StateStore  # noqa: F401
from .stores.memory import (  # noqa: F401
    MemoryStore,
    _live_memory_stores,
    _new_memory_store,
    clear_memory_stores,
)

warnings.warn(
    "resilient_session.store moved to resilient_session.stores",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["AtomicOp", "MemoryStore", "StateStore", "host_key"]
