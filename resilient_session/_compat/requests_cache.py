"""What the degraded-answer store needs from requests-cache beyond its documented API."""

from __future__ import annotations

from typing import Any

__all__ = ["redis_key"]


def redis_key(storage: Any, key: str) -> bytes:
    """The Redis key a ``RedisDict`` keeps *key* under (its ``_bkey``: namespace and name joined), so the
    stored bytes can be read without decoding them into a response."""
    raw: bytes = storage._bkey(key)
    return raw
