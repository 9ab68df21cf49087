"""Deprecated alias of :mod:`resilient_session.policies.budget`, kept for one release."""

from __future__ import annotations

import warnings

from .policies.budget import (  # noqa: F401
    _DEPOSIT,
    _LEVEL,
    _LOG_EVERY,
    _WITHDRAW,
    BudgetGate,
    RetryBudget,
    _deposit_py,
    _level_py,
    _withdraw_py,
    log,
)

warnings.warn(
    "resilient_session.budget moved to resilient_session.policies.budget",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["BudgetGate", "RetryBudget"]
