"""The longest one call can take, computed from its timeouts, retry policy, bulkhead and deadline.

Without a deadline, one URL (one hop: a redirect starts another) takes at most::

    bulkhead max_wait + attempts * (connect + read) + sum of the waits before each retry

where ``attempts`` is ``total + 1`` and the wait before retry ``n`` is the larger of the backoff ceiling
``min(backoff_max, backoff_factor * 2 ** (n - 1) + backoff_jitter)`` and, when ``Retry-After`` is
honoured, the longest ``Retry-After`` slept (``min(backoff_max, retry_after_max)`` for a
:class:`~resilient_session.RetryPolicy`). It assumes an upstream that answers each read within the read
timeout but may drip: the read timeout bounds each wait for bytes, not a response, so only a deadline
bounds a body that keeps arriving slowly. With a deadline, the deadline is the bound (redirects and drips
included; a streamed body read after the call returned is the caller's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from urllib3.util import Retry, Timeout

__all__ = ["WorstCase", "worst_case"]


@dataclass(frozen=True)
class WorstCase:
    """The parts of the bound; ``None`` where a part is unbounded."""

    connect: float | None
    read: float | None
    attempts: int | None
    waits: tuple[float, ...]
    queue: float = 0.0
    deadline: float | None = None
    #: The longest a rate limit makes the first attempt wait for its slot (a retry waits the longer of
    #: its backoff and its slot, already in ``waits``).
    quota: float = 0.0

    @property
    def per_attempt(self) -> float | None:
        """Connect plus read timeout: the longest one attempt waits for an answer that never drips."""
        if self.connect is None or self.read is None:
            return None
        return self.connect + self.read

    @property
    def per_url(self) -> float | None:
        """The longest one URL takes without a deadline (a dripping body aside), or ``None``."""
        if self.per_attempt is None or self.attempts is None:
            return None
        return self.queue + self.quota + self.attempts * self.per_attempt + sum(self.waits)

    @property
    def seconds(self) -> float | None:
        """The longest the call takes: the deadline when there is one, else :attr:`per_url`."""
        return self.deadline if self.deadline is not None else self.per_url

    def describe(self) -> str:
        """One line: the figure and how it is made up."""
        per_url = self.per_url
        if per_url is None:
            without = "unbounded (a timeout or retry count is unlimited)"
        else:
            attempts = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
            waits = " + ".join(f"{w:g}" for w in self.waits) or "0"
            queue = f"bulkhead {self.queue:g} s + " if self.queue else ""
            queue += f"rate limit {self.quota:g} s + " if self.quota else ""
            without = (
                f"{per_url:g} s per URL = {queue}{attempts} x ({self.connect:g} + {self.read:g}) s"
                f" + waits {waits} s"
            )
        if self.deadline is not None:
            return f"{self.deadline:g} s (the deadline; without it {without})"
        return f"{without}; a body that keeps dripping is bounded only by a deadline"


def worst_case(
    timeout: Any,
    retry: Retry,
    deadline: float | None = None,
    *,
    bulkhead_wait: float = 0.0,
    quota_wait: float = 0.0,
) -> WorstCase:
    """The :class:`WorstCase` of a call with these settings (*timeout* as a session takes it);
    *quota_wait* is a rate limit's ``max_wait``."""
    from .adapter import DEFAULT_TIMEOUT

    connect, read = _timeouts(DEFAULT_TIMEOUT if timeout is None else timeout)
    attempts = _attempts(retry)
    waits = (
        tuple(max(_wait(retry, n), quota_wait) for n in range(1, attempts)) if attempts is not None else ()
    )
    return WorstCase(connect, read, attempts, waits, bulkhead_wait, deadline, quota_wait)


def _timeouts(timeout: Any) -> tuple[float | None, float | None]:
    if isinstance(timeout, Timeout):
        connect, read = timeout.connect_timeout, timeout.read_timeout
        connect = connect if isinstance(connect, (int, float)) else None
        read = read if isinstance(read, (int, float)) else None
        return connect, read
    if isinstance(timeout, tuple):
        return timeout[0], timeout[1]
    return float(timeout), float(timeout)


def _attempts(retry: Retry) -> int | None:
    total = retry.total
    if total is False:
        return 1
    if isinstance(total, int):
        return max(total, 0) + 1
    # total=None: each kind of retry is bounded by its own counter, if all have one.
    counters = (retry.connect, retry.read, retry.status, retry.other)
    if all(isinstance(c, int) and not isinstance(c, bool) for c in counters):
        return 1 + sum(max(c, 0) for c in counters if isinstance(c, int))
    return None


def _wait(retry: Retry, n: int) -> float:
    """The longest wait before retry *n* (1, 2, ...)."""
    from .retry import RetryPolicy

    backoff_max = float(retry.backoff_max)
    backoff = min(backoff_max, float(retry.backoff_factor) * 2.0 ** (n - 1) + float(retry.backoff_jitter))
    if not retry.respect_retry_after_header:
        return backoff
    retry_after = float(getattr(retry, "retry_after_max", Retry.DEFAULT_RETRY_AFTER_MAX))
    if isinstance(retry, RetryPolicy):
        retry_after = min(retry_after, backoff_max)
    return max(backoff, retry_after)
