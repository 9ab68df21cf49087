"""Retry budget: a token bucket per host, so retries never multiply the load on a struggling upstream."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .._hosts import host_key
from .._options import Option, check_attributes
from ..stores.base import AtomicOp, OpSteps, Result, StateStore, run_steps
from ..stores.memory import default_store

__all__ = ["BudgetGate", "RetryBudget"]

log = logging.getLogger("resilient_session")

# A denied retry is logged at most this often per host: during an outage every call is denied.
_LOG_EVERY = 10.0


@dataclass(frozen=True, kw_only=True)
class RetryBudget:
    """How many retries a host may receive, shared by every call (and, with a shared store, every process).

    Each host has a bucket of ``capacity`` tokens, full to begin with. A retry costs ``retry_cost``
    tokens (``timeout_retry_cost`` after a timeout, which ties up the upstream longer); when the bucket
    cannot pay, the retry is skipped and the call ends with the outcome it had. A call that succeeds
    puts back the cost of its last retry, or ``success_refund`` when it needed none. First attempts never
    need tokens. The defaults are those of the AWS SDKs' "standard" retry mode: with 500 tokens, an
    upstream that fails everything sees at most 100 retries before retries stop, and they resume as
    calls succeed again.

    :param capacity: Tokens in a full bucket. Default 500.
    :param retry_cost: Tokens a retry costs. Default 5.
    :param timeout_retry_cost: Tokens a retry after a timeout costs. Default 10.
    :param success_refund: Tokens a success without retries returns. Default 1.
    :param name: ``None`` (default) keeps one bucket per ``scheme://host:port``; a name makes every call
        through this policy share one bucket.
    :param store: Where the buckets live: by default the process-wide
        :func:`~resilient_session.stores.default_store` (one bucket per key for the whole process), a
        :class:`~resilient_session.RedisStore` to share them between processes, a
        :class:`~resilient_session.MemoryStore` of its own to keep them private. A bucket left
        untouched for the store's ``ttl`` is full again.

    The policy is immutable and safe to share between threads; :meth:`new` returns a changed copy.
    """

    capacity: float = 500.0
    retry_cost: float = 5.0
    timeout_retry_cost: float = 10.0
    success_refund: float = 1.0
    name: str | None = None
    store: StateStore = field(default_factory=default_store)

    #: The plain-data options and what each accepts (the integrations file's ``budget`` table).
    OPTIONS: ClassVar[dict[str, Option]] = {
        "capacity": Option("number", exclusive=True),
        "retry_cost": Option("number"),
        "timeout_retry_cost": Option("number"),
        "success_refund": Option("number"),
        "name": Option("string", nullable=True),
    }

    def __post_init__(self) -> None:
        check_attributes(self)

    def new(self, **changes: Any) -> RetryBudget:
        """A copy with *changes* applied (the store is kept unless given)."""
        return dataclasses.replace(self, **changes)

    def key_for(self, url: str) -> str:
        """The bucket a call to *url* draws from: the policy's name, or ``scheme://host:port``."""
        return self.name if self.name is not None else host_key(url)

    def cost(self, *, timeout: bool = False) -> float:
        """Tokens one retry costs."""
        return self.timeout_retry_cost if timeout else self.retry_cost

    def try_retry(self, host: str, *, timeout: bool = False) -> bool:
        """Take the tokens for one retry to *host*; False (and nothing taken) when the bucket is short."""
        return run_steps(self.store, self.try_retry_steps(host, timeout=timeout))

    def try_retry_steps(self, host: str, *, timeout: bool = False) -> OpSteps[bool]:
        """:meth:`try_retry` as the store op it takes (see :data:`~resilient_session.stores.base.OpSteps`)."""
        cost = self.cost(timeout=timeout)
        granted, level = yield (_WITHDRAW, "budget:" + host, (self.capacity, cost))
        if not granted:
            self._log_denied(host, level, cost)
        return bool(granted)

    def record_success(self, host: str, *, last_retry_cost: float = 0.0) -> None:
        """A call to *host* succeeded: return the cost of its last retry, or ``success_refund``."""
        amount = last_retry_cost or self.success_refund  # the one op of record_success_steps, run here
        if amount:
            self.store.run(_DEPOSIT, "budget:" + host, (self.capacity, amount))

    def record_success_steps(self, host: str, *, last_retry_cost: float = 0.0) -> OpSteps[None]:
        """:meth:`record_success` as the store op it takes."""
        amount = last_retry_cost or self.success_refund
        if amount:
            yield (_DEPOSIT, "budget:" + host, (self.capacity, amount))

    def gate(self, host: str) -> BudgetGate:
        """A per-call retry gate for *host*: pays for each retry and remembers what the last one cost."""
        return BudgetGate(self, host)

    def available(self, host: str) -> float:
        """Tokens in the bucket of *host* now."""
        return self.store.run(_LEVEL, "budget:" + host, (self.capacity,))[0]

    def _log_denied(self, host: str, level: float, cost: float) -> None:
        hint = "budget-log:" + host
        now = self.store.clock()
        if now < self.store.hints.get(hint, float("-inf")):
            return
        self.store.hints[hint] = now + _LOG_EVERY
        log.warning(
            "retry budget for %s exhausted (%.0f of %.0f tokens left, a retry costs %.0f): not retrying",
            host,
            level,
            self.capacity,
            cost,
            extra={"host": host, "tokens": level, "reason": "retry budget exhausted"},
        )


class BudgetGate:
    """Asked before each retry of one call (``gate(call, reason)``); ``reason`` containing "timeout"
    selects the timeout cost. ``last_cost`` is what the call's last granted retry cost (0 if none)."""

    __slots__ = ("budget", "host", "last_cost", "paid")

    def __init__(self, budget: RetryBudget, host: str) -> None:
        self.budget = budget
        self.host = host
        self.last_cost = 0.0
        #: The answer of :meth:`pay_steps` for the next retry (an async caller asks the store before the
        #: retry policy, which asks the gate synchronously); ``None``: the gate asks the store itself.
        self.paid: tuple[bool, bool] | None = None

    def __call__(self, call: object, reason: str) -> bool:
        timeout = "timeout" in reason.lower()
        paid, self.paid = self.paid, None
        if paid is not None and paid[1] == timeout:
            granted = paid[0]
        else:
            granted = self.budget.try_retry(self.host, timeout=timeout)
        if not granted:
            return False
        self.last_cost = self.budget.cost(timeout=timeout)
        return True

    def pay_steps(self, reason: str) -> OpSteps[None]:
        """Take the tokens of the retry *reason* would be, before the gate is asked for it (the answer
        kept in :attr:`paid`): the store ops an async caller awaits ahead of a synchronous decision.
        What the decision did not use goes back with :meth:`refund_steps`."""
        timeout = "timeout" in reason.lower()
        granted = yield from self.budget.try_retry_steps(self.host, timeout=timeout)
        self.paid = (granted, timeout)

    def refund_steps(self) -> OpSteps[None]:
        """Give back tokens taken by :meth:`pay_steps` that no retry used (the decision stopped first)."""
        paid, self.paid = self.paid, None
        if paid is not None and paid[0]:
            yield (_DEPOSIT, "budget:" + self.host, (self.budget.capacity, self.budget.cost(timeout=paid[1])))

    def record_success(self) -> None:
        """The call succeeded: refund its last retry's cost, or the success refund."""
        self.budget.record_success(self.host, last_retry_cost=self.last_cost)

    def record_success_steps(self) -> OpSteps[None]:
        """:meth:`record_success` as the store op it takes."""
        return self.budget.record_success_steps(self.host, last_retry_cost=self.last_cost)


# A full bucket is stored as no key at all: nothing to keep for hosts that are doing fine.


def _withdraw_py(tokens: float | None, args: Sequence[float], now: float) -> tuple[float | None, Result]:
    capacity, cost = args
    level = capacity if tokens is None else min(tokens, capacity)
    if level >= cost:
        return level - cost, (1.0, level - cost)
    return tokens, (0.0, level)


def _deposit_py(tokens: float | None, args: Sequence[float], now: float) -> tuple[float | None, Result]:
    capacity, amount = args
    if tokens is None:
        return None, (capacity,)
    level = tokens + amount
    return (None, (capacity,)) if level >= capacity else (level, (level,))


def _level_py(tokens: float | None, args: Sequence[float], now: float) -> tuple[float | None, Result]:
    (capacity,) = args
    return tokens, (capacity if tokens is None else min(tokens, capacity),)


_WITHDRAW = AtomicOp(
    "budget_withdraw",
    _withdraw_py,
    lua_files=("budget_load.lua", "budget_withdraw.lua"),
)

_DEPOSIT = AtomicOp(
    "budget_deposit",
    _deposit_py,
    lua_files=("budget_load.lua", "budget_deposit.lua"),
)

_LEVEL = AtomicOp(
    "budget_level",
    _level_py,
    lua_files=("budget_load.lua", "budget_level.lua"),
)
