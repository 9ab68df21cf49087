"""Deprecated alias of :mod:`resilient_session.testing.pytest_plugin`, kept for one release."""

from __future__ import annotations

import warnings

from .testing.pytest_plugin import (
    _SLEEPING_MODULES as _SLEEPING_MODULES,
)
from .testing.pytest_plugin import (
    SkippedSleeps as SkippedSleeps,
)
from .testing.pytest_plugin import (
    _InstantTime as _InstantTime,
)
from .testing.pytest_plugin import (
    _resilient_session_chaos_server as _resilient_session_chaos_server,
)
from .testing.pytest_plugin import (
    _resilient_session_clean_state as _resilient_session_clean_state,
)
from .testing.pytest_plugin import (
    chaos_server as chaos_server,
)
from .testing.pytest_plugin import (
    no_backoff as no_backoff,
)
from .testing.pytest_plugin import (
    pytest_configure as pytest_configure,
)
from .testing.pytest_plugin import (
    resilient_session as resilient_session,
)

warnings.warn(
    "resilient_session.pytest_plugin moved to resilient_session.testing.pytest_plugin",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["SkippedSleeps", "chaos_server", "no_backoff", "resilient_session"]
