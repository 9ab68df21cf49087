"""Deprecated alias of :mod:`resilient_session.stores.base`, kept for one release."""

from __future__ import annotations

import warnings

from .stores.base import (
    _DEFAULT_PORTS as _DEFAULT_PORTS,
)
from .stores.base import (
    AtomicOp as AtomicOp,
)
from .stores.base import (
    MemoryStore as MemoryStore,
)
from .stores.base import (
    Result as Result,
)
from .stores.base import (
    StateStore as StateStore,
)
from .stores.base import (
    _live_memory_stores as _live_memory_stores,
)
from .stores.base import (
    _new_memory_store as _new_memory_store,
)
from .stores.base import (
    _origin_key as _origin_key,
)
from .stores.base import (
    clear_memory_stores as clear_memory_stores,
)
from .stores.base import (
    host_key as host_key,
)

warnings.warn(
    "resilient_session.store moved to resilient_session.stores.base",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["AtomicOp", "MemoryStore", "StateStore", "host_key"]
