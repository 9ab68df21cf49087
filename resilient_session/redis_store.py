"""Deprecated alias of :mod:`resilient_session.stores.redis`, kept for one release."""

from __future__ import annotations

import warnings

from .stores.redis import (
    _CLAMPED as _CLAMPED,
)
from .stores.redis import (
    _EPILOGUE as _EPILOGUE,
)
from .stores.redis import (
    _PRELUDE as _PRELUDE,
)
from .stores.redis import (
    CLIENT_DEFAULTS as CLIENT_DEFAULTS,
)
from .stores.redis import (
    RedisStore as RedisStore,
)
from .stores.redis import (
    _clamp_connections as _clamp_connections,
)
from .stores.redis import (
    _ClampedConnection as _ClampedConnection,
)
from .stores.redis import (
    _client_from_url as _client_from_url,
)
from .stores.redis import (
    _import_redis as _import_redis,
)
from .stores.redis import (
    _rebuild as _rebuild,
)
from .stores.redis import (
    log as log,
)

warnings.warn(
    "resilient_session.redis_store moved to resilient_session.stores.redis",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["RedisStore"]
