"""Deprecated alias of :mod:`resilient_session.policies.budget`, kept for one release."""

from __future__ import annotations

import warnings

from .policies.budget import (
    _DEPOSIT as _DEPOSIT,
)
from .policies.budget import (
    _LEVEL as _LEVEL,
)
from .policies.budget import (
    _LOG_EVERY as _LOG_EVERY,
)
from .policies.budget import (
    _LUA_LOAD as _LUA_LOAD,
)
from .policies.budget import (
    _WITHDRAW as _WITHDRAW,
)
from .policies.budget import (
    BudgetGate as BudgetGate,
)
from .policies.budget import (
    RetryBudget as RetryBudget,
)
from .policies.budget import (
    _deposit_py as _deposit_py,
)
from .policies.budget import (
    _level_py as _level_py,
)
from .policies.budget import (
    _withdraw_py as _withdraw_py,
)
from .policies.budget import (
    log as log,
)

warnings.warn(
    "resilient_session.budget moved to resilient_session.policies.budget",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["BudgetGate", "RetryBudget"]
