"""Where the policies keep their state: :class:`MemoryStore` (this process) or :class:`RedisStore` (shared).

A custom store subclasses :class:`StateStore` and runs each :class:`AtomicOp` atomically.
"""

from __future__ import annotations

from .._hosts import host_key
from .base import AtomicOp, Result, StateStore
from .memory import MemoryStore, default_store
from .redis import RedisStore

__all__ = ["AtomicOp", "MemoryStore", "RedisStore", "Result", "StateStore", "default_store", "host_key"]
