"""The policies a session applies per host: a circuit breaker, a retry budget, a bulkhead, a rate limit,
and graceful degradation (:class:`Degrade`).

Each is an immutable policy object (``new()`` returns a changed copy) whose state lives apart from it:
a breaker's failures and a budget's tokens in a :mod:`~resilient_session.stores` store, in process or
shared through Redis; a rate limit's schedule in a store, like the breaker's; a degrade policy's answers
in a :class:`~resilient_session.stores.ResponseStore`; a bulkhead's calls in flight in its
:class:`BulkheadSlots`, in process by design (a waiting call sleeps on a condition variable).
"""

from __future__ import annotations

from .breaker import BreakerSnapshot, CircuitBreaker, CircuitState, Permit, StateChange
from .budget import RetryBudget
from .bulkhead import Bulkhead, BulkheadSlots
from .degrade import Degrade, Degraded
from .quota_headers import Quota, parse_quota
from .ratelimit import QuotaSlot, QuotaState, RateLimit

__all__ = [
    "BreakerSnapshot",
    "Bulkhead",
    "BulkheadSlots",
    "CircuitBreaker",
    "CircuitState",
    "Degrade",
    "Degraded",
    "Permit",
    "Quota",
    "QuotaSlot",
    "QuotaState",
    "RateLimit",
    "RetryBudget",
    "StateChange",
    "parse_quota",
]
