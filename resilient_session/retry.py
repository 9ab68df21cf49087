"""Retry policy: urllib3's :class:`~urllib3.util.Retry` with full jitter, a cap and a call deadline."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Collection, Iterable
from types import TracebackType
from typing import Any

from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from ._call import current_call
from ._redact import redact_url
from .errors import parse_retry_after

__all__ = ["DEFAULT_STATUS_FORCELIST", "RetryPolicy", "as_retry_policy"]

log = logging.getLogger("resilient_session")

#: Statuses that mean "try again later" rather than "you are wrong".
DEFAULT_STATUS_FORCELIST = frozenset({429, 502, 503, 504})


class RetryPolicy(Retry):
    """When and how long to wait before trying a request again.

    A :class:`urllib3.util.Retry` (so it works wherever urllib3 or ``requests`` accept ``max_retries``,
    including ``responses`` mocks) with these defaults and additions:

    :param total: Attempts after the first. Default 3.
    :param connect, read, status, other: Per-kind limits, as in urllib3 (default: bounded by ``total``).
    :param backoff_factor: Base ``b`` of the backoff, in seconds. Before retry ``n`` (1, 2, ...) the
        policy sleeps a uniformly random time in ``[0, min(backoff_max, b * 2 ** (n - 1))]``
        ("full jitter", so a fleet of clients does not retry in lockstep). Default 0.5.
    :param backoff_max: The cap on any single wait, backoff or ``Retry-After``. Default 30.
    :param full_jitter: ``False`` sleeps the ceiling itself (deterministic exponential backoff).
    :param status_forcelist: Statuses retried. Default ``{429, 502, 503, 504}``.
    :param allowed_methods: Methods retried on read errors and statuses. Default: urllib3's idempotent
        set (DELETE, GET, HEAD, OPTIONS, PUT, TRACE).
    :param idempotency_key_header: A request carrying this header is retried even when its method is
        in ``idempotency_key_methods``. Default ``"Idempotency-Key"``.
    :param idempotency_key_methods: Default ``{"POST", "PATCH"}``.
    :param respect_retry_after_header: Honour ``Retry-After`` (capped by ``backoff_max`` and by the
        call's remaining deadline). Default True.
    :param raise_on_status: Default False: when retries run out on a retryable status, the last
        response is returned, as ``requests`` does; True raises ``RetryExhaustedError``.
    :param retry_read_timeouts: Default False: a read timeout (the upstream accepted the request and
        went silent) is raised at once, so ``timeout=5`` still means an answer or an error in about
        5 s, as in plain requests, and a struggling upstream is not sent the same slow request again.
        True retries them like other read errors (bound the total with the session's ``deadline``).

    Connection errors (nothing was sent, connect timeouts included) are retried for every method, and
    connections dropped before an answer for the ``allowed_methods``, as in urllib3.

    The policy is immutable: :meth:`increment` and :meth:`new` return changed copies that keep the
    subclass and every option. During a call it reads the call's deadline from the session's
    per-call state; it never does I/O other than the sleep it is asked for.
    """

    DEFAULT_BACKOFF_MAX = 30

    def __init__(
        self,
        total: bool | int | None = 3,
        *,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        full_jitter: bool = True,
        status_forcelist: Collection[int] | None = DEFAULT_STATUS_FORCELIST,
        raise_on_status: bool = False,
        idempotency_key_header: str = "Idempotency-Key",
        idempotency_key_methods: Iterable[str] = ("POST", "PATCH"),
        retry_read_timeouts: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            total,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            status_forcelist=status_forcelist,
            raise_on_status=raise_on_status,
            **kwargs,
        )
        self.full_jitter = full_jitter
        self.idempotency_key_header = idempotency_key_header
        self.idempotency_key_methods = frozenset(m.upper() for m in idempotency_key_methods)
        self.retry_read_timeouts = retry_read_timeouts
        # The wait chosen by increment() for the retry this copy stands for; sleep() uses it so the
        # logged and the slept value are the same number.
        self._planned_sleep: float | None = None

    def new(self, **kw: Any) -> RetryPolicy:
        params: dict[str, Any] = {
            "full_jitter": self.full_jitter,
            "idempotency_key_header": self.idempotency_key_header,
            "idempotency_key_methods": self.idempotency_key_methods,
            "retry_read_timeouts": self.retry_read_timeouts,
        }
        params.update(kw)
        return super().new(**params)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(total={self.total}, connect={self.connect}, read={self.read}, "
            f"status={self.status}, backoff_factor={self.backoff_factor}, backoff_max={self.backoff_max})"
        )

    # -- decisions -------------------------------------------------------------------------------

    def _is_method_retryable(self, method: str) -> bool:
        if super()._is_method_retryable(method):
            return True
        call = current_call()
        return call is not None and call.idempotency_key and method.upper() in self.idempotency_key_methods

    def get_backoff_time(self) -> float:
        """The wait before the next retry: full jitter over the capped exponential ceiling."""
        consecutive = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            consecutive += 1
        if consecutive == 0 or not self.backoff_factor:
            return 0.0
        ceiling = min(self.backoff_max, self.backoff_factor * 2 ** (consecutive - 1))
        return random.uniform(0.0, ceiling) if self.full_jitter else ceiling

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """``Retry-After`` in seconds (delta or HTTP date), capped by ``backoff_max``."""
        seconds = parse_retry_after(response.headers.get("Retry-After"))
        return None if seconds is None else min(seconds, self.backoff_max)

    def next_delay(self, response: BaseHTTPResponse | None = None) -> float:
        """The wait before the next attempt: ``Retry-After`` when honoured and present, else backoff."""
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after is not None:
                return retry_after
        return self.get_backoff_time()

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> RetryPolicy:
        if isinstance(error, ReadTimeoutError) and not self.retry_read_timeouts:
            # The same signal urllib3 gives for a read error it will not retry: re-raise it as is.
            raise error.with_traceback(_stacktrace)
        call = current_call()
        if call is not None and response is not None:
            call.last_status = response.status
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        delay = new.next_delay(response)
        reason = _reason(response, error)
        if call is not None:
            remaining = call.remaining()
            # Waiting past the deadline only to fail there helps nobody: stop now and surface the
            # last outcome (the response, or the error), exactly as if the retries had run out.
            if remaining is not None and delay >= remaining:
                log.debug(
                    "not retrying %s %s: the wait (%.2fs) would pass the deadline (%.2fs left)",
                    call.method,
                    call.url,
                    delay,
                    max(remaining, 0.0),
                    extra={"method": call.method, "url": call.url, "reason": reason, "outcome": "deadline"},
                )
                raise MaxRetryError(_pool, url, error or ResponseError(reason))  # type: ignore[arg-type]
            if not call.may_retry(reason):
                raise MaxRetryError(_pool, url, error or ResponseError(reason))  # type: ignore[arg-type]
            call.attempts += 1
            if call.observer is not None:
                call.observer.retry(call, reason, delay, response.status if response is not None else None)
        new._planned_sleep = delay
        # WARNING, as urllib3 logs its own retries: a retry is worth seeing with default logging, and the
        # one INFO line per call (observability) stays one.
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

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """Sleep the planned wait, never past the call's deadline."""
        delay = self._planned_sleep if self._planned_sleep is not None else self.next_delay(response)
        call = current_call()
        remaining = call.remaining() if call is not None else None
        if remaining is not None:
            delay = min(delay, max(remaining, 0.0))
        if delay > 0:
            time.sleep(delay)


def _reason(response: BaseHTTPResponse | None, error: Exception | None) -> str:
    if error is None:
        return f"status {response.status}" if response is not None else "unknown"
    # urllib3 makes NewConnectionError (refused, DNS failure) a ConnectTimeoutError subclass: it is not
    # a timeout, and must not be reported or charged to a retry budget as one.
    if isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError):
        return "connect timeout"
    if isinstance(error, ReadTimeoutError):
        return "read timeout"
    return type(error).__name__


def as_retry_policy(retry: Retry | int | bool | None) -> Retry:
    """Turn the ``retry=`` option into a :class:`~urllib3.util.Retry`.

    ``None`` gives the default :class:`RetryPolicy`, an int ``n`` gives ``RetryPolicy(total=n)``,
    ``False`` disables retries (plain requests' own ``Retry(0, read=False)``), a ``Retry`` is used as is.
    """
    if retry is None or retry is True:
        return RetryPolicy()
    if retry is False:
        return RetryPolicy(0, read=False)
    if isinstance(retry, Retry):
        return retry
    return RetryPolicy(int(retry))
