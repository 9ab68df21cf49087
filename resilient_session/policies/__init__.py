"""The policies a session applies per host: a circuit breaker, a retry budget and a bulkhead.

Each is an immutable policy object; the state it keeps (failures, tokens) lives in a
:mod:`~resilient_session.stores` store, in process or shared through Redis.
"""

from __future__ import annotations

from .breaker import BreakerSnapshot, CircuitBreaker, CircuitState, Permit, StateChange
from .budget import RetryBudget
from .bulkhead import Bulkhead

__all__ = [
    "BreakerSnapshot",
    "Bulkhead",
    "CircuitBreaker",
    "CircuitState",
    "Permit",
    "RetryBudget",
    "StateChange",
]
