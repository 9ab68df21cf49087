"""Deprecated alias of :mod:`resilient_session.testing.demo`, kept for one release."""

from __future__ import annotations

import warnings

from .testing.demo import (
    _DEAD_HOST as _DEAD_HOST,
)
from .testing.demo import (
    _SLOW as _SLOW,
)
from .testing.demo import (
    BREAKER_FAILURES as BREAKER_FAILURES,
)
from .testing.demo import (
    BREAKER_OPEN_WAIT as BREAKER_OPEN_WAIT,
)
from .testing.demo import (
    DEADLINE as DEADLINE,
)
from .testing.demo import (
    HUNG as HUNG,
)
from .testing.demo import (
    OK as OK,
)
from .testing.demo import (
    SCRIPT as SCRIPT,
)
from .testing.demo import (
    TIMEOUT as TIMEOUT,
)
from .testing.demo import (
    WATCHDOG as WATCHDOG,
)
from .testing.demo import (
    Client as Client,
)
from .testing.demo import (
    Outcome as Outcome,
)
from .testing.demo import (
    SideResult as SideResult,
)
from .testing.demo import (
    Step as Step,
)
from .testing.demo import (
    _breakdown as _breakdown,
)
from .testing.demo import (
    _hung as _hung,
)
from .testing.demo import (
    _plain_client as _plain_client,
)
from .testing.demo import (
    _Progress as _Progress,
)
from .testing.demo import (
    _resilient_client as _resilient_client,
)
from .testing.demo import (
    _run_side as _run_side,
)
from .testing.demo import (
    _table as _table,
)
from .testing.demo import (
    _watched as _watched,
)
from .testing.demo import (
    render as render,
)
from .testing.demo import (
    run_demo as run_demo,
)

warnings.warn(
    "resilient_session._demo moved to resilient_session.testing.demo",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["SCRIPT", "Outcome", "SideResult", "Step", "render", "run_demo"]
