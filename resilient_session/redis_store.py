"""Deprecated alias of :mod:`resilient_session.stores.redis`, kept for one release."""

from __future__ import annotations

import warnings

from .stores.redis import (  # noqa: F401
    CLIENT_DEFAULTS,
    RedisStore,
    _clamp_connections,
    _ClampedConnection,
    _client_from_url,
    _import_redis,
    _rebuild,
    log,
)

warnings.warn(
    "resilient_session.redis_store moved to resilient_session.stores.redis",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["RedisStore"]
