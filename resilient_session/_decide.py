"""The retry decisions of one call: pure functions of the call's state and the caller's ``Retry``.

No I/O and no sleeping happen here. A driver (the attempt loop of :mod:`resilient_session._attempts`)
sends one attempt at a time with urllib3's own retries off, asks these functions what the outcome means,
asks the retry gates (budget, breaker) and pays the wait itself; another transport can drive the same
decisions. The caller's ``Retry`` (a :class:`~resilient_session.RetryPolicy` or any urllib3 ``Retry``) is
read as data: ``is_retry``, ``increment``, ``get_retry_after`` and ``get_backoff_time`` are urllib3's
own decisions (or the subclass's), never copied here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from urllib3.exceptions import (
    ConnectTimeoutError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

__all__ = [
    "SINGLE_ATTEMPT",
    "Retrying",
    "Stop",
    "after_error",
    "after_status",
    "allowed_by_deadline",
    "broken_body_cause",
    "delay",
    "reason_for",
    "with_idempotency_key",
]

#: What one attempt is sent with: urllib3's own retries off, exactly as requests sends with
#: ``max_retries=0`` (``Retry(0, read=False)``): the first outcome of an attempt comes back as is.
SINGLE_ATTEMPT = Retry(0, read=False)


_IS_RETRY = Retry.is_retry


@dataclass(frozen=True, slots=True)
class Retrying:
    """Send another attempt: *chain* has counted the failure, *wait* seconds go first."""

    chain: Retry
    wait: float
    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    """No other attempt: *raised* is what the ``Retry`` raised (``MaxRetryError``, or the error itself),
    ``None`` when the outcome was not a failure the ``Retry`` counts (the response stands)."""

    raised: BaseException | None
    reason: str


def after_status(
    chain: Retry, method: str, url: str, response: BaseHTTPResponse, pool: Any = None
) -> Retrying | Stop | None:
    """What an answer with *response*'s status means, as urllib3's ``urlopen`` decides it: ``None`` when
    the ``Retry`` does not retry it, :class:`Retrying` or :class:`Stop` (retries used up) when it does."""
    status = response.status
    if (
        type(chain).is_retry is _IS_RETRY
        and status not in (chain.status_forcelist or ())
        and status not in chain.RETRY_AFTER_STATUS_CODES
    ):
        return None  # urllib3's own is_retry says no for such a status, whatever the method and headers
    has_retry_after = bool(response.headers.get("Retry-After"))
    if not chain.is_retry(method, status, has_retry_after):
        return None
    reason = f"status {response.status}"
    try:
        new = chain.increment(method, url, response=response, _pool=pool)
    except MaxRetryError as exc:
        return Stop(exc, reason)
    return Retrying(new, delay(new, response), reason)


def after_error(chain: Retry, method: str, url: str, error: Exception, pool: Any = None) -> Retrying | Stop:
    """What a failed attempt (*error*: the urllib3 error its ``urlopen`` counts) means for *chain*."""
    reason = reason_for(None, error)
    try:
        new = chain.increment(method, url, error=error, _pool=pool, _stacktrace=error.__traceback__)
    except Exception as exc:  # MaxRetryError, or the error re-raised: the Retry's "no"
        return Stop(exc, reason)
    return Retrying(new, delay(new, None), reason)


def delay(chain: Retry, response: BaseHTTPResponse | None = None) -> float:
    """The wait before the next attempt, as ``Retry.sleep`` would choose it: ``Retry-After`` when honoured
    and present, else the backoff. An unreadable ``Retry-After`` means "no hint" (urllib3 would raise)."""
    if chain.respect_retry_after_header and response is not None:
        try:
            retry_after = chain.get_retry_after(response)
        except InvalidHeader:
            retry_after = None
        if retry_after:
            return float(retry_after)
    return max(float(chain.get_backoff_time()), 0.0)


def allowed_by_deadline(wait: float, remaining: float | None, expired: bool) -> bool:
    """False when the call has no time for *wait* and another attempt: waiting past the deadline only to
    fail there helps nobody, so the last outcome stands, as if the retries had run out."""
    return not expired and (remaining is None or wait < remaining)


def with_idempotency_key(chain: Retry, request_headers: Any) -> Retry:
    """*chain*, or a copy that also retries the ``idempotency_key_methods`` when the request carries the
    policy's ``idempotency_key_header`` (a :class:`~resilient_session.RetryPolicy` option): urllib3's own
    ``allowed_methods``, widened for this call."""
    header = getattr(chain, "idempotency_key_header", None)
    methods = chain.allowed_methods
    if not header or methods is None or header not in request_headers:
        return chain
    extra: frozenset[str] = frozenset(getattr(chain, "idempotency_key_methods", ()))
    return chain.new(allowed_methods=frozenset(methods) | extra)


def reason_for(response: BaseHTTPResponse | None, error: BaseException | None) -> str:
    """The reason a retry is logged and charged with (``"status 503"``, ``"connect timeout"`` ...)."""
    if error is None:
        return f"status {response.status}" if response is not None else "unknown"
    # urllib3 makes NewConnectionError (refused, DNS failure) a ConnectTimeoutError subclass: it is not
    # a timeout, and must not be reported or charged to a retry budget as one.
    if isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError):
        return "connect timeout"
    if isinstance(error, ReadTimeoutError):
        return "read timeout"
    return type(error).__name__


def broken_body_cause(broken: BaseException) -> Exception:
    """The urllib3 error a body that broke off mid-way is counted as (a read error, as urllib3 counts a
    connection dropped before the answer)."""
    first = broken.args[0] if broken.args else None
    return first if isinstance(first, Exception) else ProtocolError(str(broken))
