"""The httpx twin's view of a ``Retry``: the policy asked, inside its own attempt loop, with the call's
deadline, retry gates and rate limit applied to each answer.

The requests session reads a ``Retry`` as data (:mod:`resilient_session._decide`); the httpx transports
ask ``increment()`` itself, so a copy of the policy whose class has :class:`CallAwareRetry` stands in.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING

from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from .._call import current_call
from .._compat.classes import with_mixin
from .._compat.urllib3 import retry_copy
from .._decide import reason_for
from .._quota import current_gate
from .._redact import redact_url

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["CallAwareRetry", "call_aware", "no_retries"]

log = logging.getLogger("resilient_session")


class CallAwareRetry(Retry):
    """What a ``Retry`` does inside a call of the httpx twin, whoever wrote the policy.

    It stops retrying once the next wait would pass the call's deadline, asks the call's retry gates
    (the retry budget, the circuit breaker) and its rate limit before every retry, counts attempts on the
    call and logs each retry. Outside a call it is the ``Retry`` it extends.
    """

    #: The wait chosen by increment() for the retry this copy stands for: the transport sleeps it, so the
    #: logged and the slept value are the same number.
    _planned_sleep: float | None = None

    def next_delay(self, response: BaseHTTPResponse | None = None) -> float:
        """The wait before the next attempt: ``Retry-After`` when honoured and present, else backoff."""
        if self.respect_retry_after_header and response is not None:
            try:
                retry_after = self.get_retry_after(response)
            except InvalidHeader:
                retry_after = None  # an unreadable header means "no hint"
            if retry_after:
                return float(retry_after)
        return float(self.get_backoff_time())

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        call = current_call()
        quota = current_gate(call)
        if call is not None and response is not None:
            call.last_status = response.status
            if quota is not None:
                quota.answered(response.headers, response.status)
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        delay = new.next_delay(response)
        reason = reason_for(response, error)
        if call is not None:
            remaining = call.remaining()
            # Waiting past the deadline only to fail there helps nobody: stop now and surface the
            # last outcome (the response, or the error), exactly as if the retries had run out.
            if call.expired or (remaining is not None and delay >= remaining):
                log.debug(
                    "not retrying %s %s: the wait (%.2fs) would pass the deadline (%.2fs left)",
                    call.method,
                    call.url,
                    delay,
                    max(remaining or 0.0, 0.0),
                    extra={"method": call.method, "url": call.url, "reason": reason, "outcome": "deadline"},
                )
                raise MaxRetryError(_pool, url, error or ResponseError(reason))  # type: ignore[arg-type]
            if not call.may_retry(reason):
                raise MaxRetryError(_pool, url, error or ResponseError(reason))  # type: ignore[arg-type]
            if quota is not None:
                # The retry takes its slot in the rate limit too; none in time ends the call as above.
                slot = quota.before_retry(call, delay)
                if slot is None:
                    raise MaxRetryError(_pool, url, error or ResponseError(reason))  # type: ignore[arg-type]
                delay = slot
            call.attempts += 1
            if call.observer is not None:
                call.observer.retry(call, reason, delay, response.status if response is not None else None)
        new._planned_sleep = delay
        # WARNING, as urllib3 logs its own retries: a retry is worth seeing once logging is configured,
        # and the one INFO line per call (observability) stays one.
        method = call.method if call else method
        shown_url = call.url if call else redact_url(url)
        attempt = call.attempts if call else len(new.history) + 1
        log.warning(
            "retrying %s %s (attempt %d, reason: %s, sleeping %.2fs)",
            method,
            shown_url,
            attempt,
            reason,
            delay,
            extra={"method": method, "url": shown_url, "attempt": attempt, "reason": reason, "sleep": delay},
        )
        return new


def call_aware(retry: Retry) -> Retry:
    """*retry* itself when it is a :class:`CallAwareRetry`, else a copy of it that is one.

    The copy keeps the class (as a subclass), every option and the history, so the user's policy decides
    what is retried and how often; only the deadline, the gates and the bookkeeping are added.
    """
    if isinstance(retry, CallAwareRetry):
        return retry
    return retry_copy(retry, with_mixin(CallAwareRetry, type(retry)))


def no_retries(retry: Retry) -> Retry:
    """*retry* with every retry off, as plain requests sends (``Retry(0, read=False)``): for a request
    whose body cannot be sent twice, the first outcome is the call's outcome."""
    return retry.new(total=0, read=False, status_forcelist=frozenset())
