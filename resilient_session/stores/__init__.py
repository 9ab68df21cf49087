"""Where the policies keep their state: :class:`MemoryStore` (this process) or :class:`RedisStore` (shared);
:class:`ResponseStore` keeps the answers a degrade policy serves.

A custom store subclasses :class:`StateStore` and runs each :class:`AtomicOp` atomically.
"""

from __future__ import annotations

from .._hosts import host_key
from .base import AtomicOp, Result, StateStore
from .memory import MemoryStore, default_store
from .redis import RedisStore
from .responses import ResponseStore

__all__ = [
    "AtomicOp",
    "MemoryStore",
    "RedisStore",
    "ResponseStore",
    "Result",
    "StateStore",
    "default_store",
    "host_key",
]
