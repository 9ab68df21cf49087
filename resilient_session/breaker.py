"""Deprecated alias of :mod:`resilient_session.policies.breaker`, kept for one release."""

from __future__ import annotations

import warnings

from .policies.breaker import (
    _ACQUIRE as _ACQUIRE,
)
from .policies.breaker import (
    _LUA_LOAD as _LUA_LOAD,
)
from .policies.breaker import (
    _RECORD as _RECORD,
)
from .policies.breaker import (
    _RESET as _RESET,
)
from .policies.breaker import (
    _SNAPSHOT as _SNAPSHOT,
)
from .policies.breaker import (
    _STATES as _STATES,
)
from .policies.breaker import (
    DEFAULT_FAILURE_EXCEPTIONS as DEFAULT_FAILURE_EXCEPTIONS,
)
from .policies.breaker import (
    DEFAULT_FAILURE_STATUSES as DEFAULT_FAILURE_STATUSES,
)
from .policies.breaker import (
    BreakerSnapshot as BreakerSnapshot,
)
from .policies.breaker import (
    CircuitBreaker as CircuitBreaker,
)
from .policies.breaker import (
    CircuitState as CircuitState,
)
from .policies.breaker import (
    ErrorTypes as ErrorTypes,
)
from .policies.breaker import (
    Permit as Permit,
)
from .policies.breaker import (
    StateChange as StateChange,
)
from .policies.breaker import (
    _acquire_py as _acquire_py,
)
from .policies.breaker import (
    _Circuit as _Circuit,
)
from .policies.breaker import (
    _close as _close,
)
from .policies.breaker import (
    _describe as _describe,
)
from .policies.breaker import (
    _no_retry as _no_retry,
)
from .policies.breaker import (
    _open_error as _open_error,
)
from .policies.breaker import (
    _open_wait as _open_wait,
)
from .policies.breaker import (
    _record_py as _record_py,
)
from .policies.breaker import (
    _reply as _reply,
)
from .policies.breaker import (
    _reset_py as _reset_py,
)
from .policies.breaker import (
    _snapshot_py as _snapshot_py,
)
from .policies.breaker import (
    _trip as _trip,
)
from .policies.breaker import (
    log as log,
)

warnings.warn(
    "resilient_session.breaker moved to resilient_session.policies.breaker",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["BreakerSnapshot", "CircuitBreaker", "CircuitState", "Permit", "StateChange"]
