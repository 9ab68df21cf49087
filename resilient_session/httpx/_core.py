"""What the sync and the async httpx transports share: how a failure reads to the retry policy, which
typed error it becomes, and the decisions taken between attempts.

The transports read a :class:`~resilient_session.RetryPolicy` (or any urllib3 ``Retry``) as data: its
``is_retry`` says whether a status is retried, its ``increment`` counts an attempt and says whether
another may go; the transports take those decisions as the requests session does
(:mod:`resilient_session._decide`), the call's deadline, retry budget and circuit included. An httpx
failure is shown to ``increment`` as the urllib3 exception urllib3 raises in the same situation, so the
policy's ``connect``/``read``/``other`` counters and ``allowed_methods`` decide as they do for the
requests adapter.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import httpx
from urllib3 import HTTPHeaderDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import HTTPResponse

from .._call import CallState
from .._redact import redact_log_text
from ..errors import APIError, BulkheadFullError, CircuitOpenError, QuotaExceededError
from . import errors as hx

__all__ = ["BODY", "HEADERS", "retry_view", "typed", "wire_cause"]

#: Where a failure happened: before the answer's headers arrived, or while its body was read.
HEADERS, BODY = "headers", "body"

# Slack under which a timeout counts as "the deadline ran out" rather than "the upstream was slow".
DEADLINE_SLACK = 0.005


def retry_view(response: httpx.Response) -> HTTPResponse:
    """A urllib3 response with *response*'s status and headers (no body), for ``Retry.increment``."""
    return HTTPResponse(
        body=b"",
        headers=HTTPHeaderDict(response.headers.multi_items()),
        status=response.status_code,
        preload_content=False,
        decode_content=False,
    )


def _message(exc: BaseException) -> str:
    text = redact_log_text(str(exc)) if str(exc) else ""
    return text or type(exc).__name__


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def wire_cause(exc: httpx.TransportError, where: str) -> Exception:
    """The urllib3 exception urllib3 raises where httpx raised *exc* (its message redacted): what the
    retry policy is shown, and the ``__cause__`` of the typed error (route groups read it)."""
    message = _message(exc)
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ConnectTimeoutError(message)
    if isinstance(exc, httpx.TimeoutException):
        return ReadTimeoutError(None, None, message)  # type: ignore[arg-type]
    if isinstance(exc, httpx.ProxyError):
        return ProxyError(message, NewConnectionError(None, message))  # type: ignore[arg-type]
    if isinstance(exc, httpx.ConnectError):
        tls = _tls_cause(exc)
        if tls is not None:
            return SSLError(tls)
        return NewConnectionError(None, message)  # type: ignore[arg-type]
    return ProtocolError("Connection aborted." if where == HEADERS else "Connection broken.", message)


_BEFORE: tuple[tuple[type[httpx.TransportError], type[APIError]], ...] = (
    (httpx.ConnectTimeout, hx.HTTPXConnectTimeout),
    (httpx.ReadTimeout, hx.HTTPXReadTimeout),
    (httpx.WriteTimeout, hx.HTTPXWriteTimeout),
    (httpx.PoolTimeout, hx.HTTPXPoolTimeout),
    (httpx.ProxyError, hx.HTTPXProxyError),
    (httpx.ConnectError, hx.HTTPXConnectError),
    (httpx.ReadError, hx.HTTPXReadError),
    (httpx.WriteError, hx.HTTPXWriteError),
    (httpx.RemoteProtocolError, hx.HTTPXRemoteProtocolError),
)
_DURING_BODY: tuple[tuple[type[httpx.TransportError], type[APIError]], ...] = (
    (httpx.ReadTimeout, hx.HTTPXStalledBody),
    (httpx.ReadError, hx.HTTPXBodyReadError),
    (httpx.RemoteProtocolError, hx.HTTPXIncompleteBody),
)


def typed(exc: BaseException, call: CallState, request: httpx.Request, where: str = HEADERS) -> BaseException:
    """The typed twin of *exc* (an httpx transport failure, or one of our refusals); anything else
    (our own errors, httpx's errors of use such as ``UnsupportedProtocol``) comes back as is."""
    if isinstance(exc, CircuitOpenError) and not isinstance(exc, hx.HTTPXCircuitOpen):
        return hx.HTTPXCircuitOpen(
            str(exc.args[0]) if exc.args else "circuit open",
            host=exc.host,
            retry_in=exc.retry_in,
            **hx.context(request, attempts=0, elapsed=call.elapsed()),
        )
    if isinstance(exc, BulkheadFullError) and not isinstance(exc, hx.HTTPXBulkheadFull):
        return hx.HTTPXBulkheadFull(
            str(exc.args[0]) if exc.args else "bulkhead full",
            host=exc.host,
            max_concurrent=exc.max_concurrent,
            waited=exc.waited,
            **hx.context(request, attempts=0, elapsed=call.elapsed()),
        )
    if isinstance(exc, QuotaExceededError) and not isinstance(exc, hx.HTTPXQuotaExceeded):
        return hx.HTTPXQuotaExceeded(
            str(exc.args[0]) if exc.args else "rate limit reached",
            key=exc.key,
            retry_after=exc.retry_after,
            rate=exc.rate,
            **hx.context(request, attempts=0, elapsed=call.elapsed()),
        )
    if isinstance(exc, APIError) or not isinstance(exc, httpx.TransportError):
        return exc
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return exc
    cause = wire_cause(exc, where)
    ctx = hx.context(request, attempts=call.attempts, elapsed=call.elapsed(), status=call.last_status)
    if call.deadline_passed(DEADLINE_SLACK):
        error: APIError = hx.HTTPXDeadlineExceeded(f"the deadline ran out: {_message(exc)}", **ctx)
    else:
        cls: type[APIError] | None = None
        if where == BODY:
            cls = next((ours for theirs, ours in _DURING_BODY if isinstance(exc, theirs)), None)
        if cls is None:
            cls = next((ours for theirs, ours in _BEFORE if isinstance(exc, theirs)), None)
        if cls is None:
            return exc
        if cls is hx.HTTPXConnectError and isinstance(cause, SSLError):
            cls = hx.HTTPXSSLError
        error = cls(_message(exc), **ctx)
    error.__cause__ = cause
    return error


def deadline_error(call: CallState, request: httpx.Request, what: str) -> hx.HTTPXDeadlineExceeded:
    """The call's deadline ran out (*what* says where)."""
    return hx.HTTPXDeadlineExceeded(
        what, **hx.context(request, attempts=call.attempts, elapsed=call.elapsed(), status=call.last_status)
    )


def where(call: CallState) -> str:
    """The deadline error's message, with the last status seen."""
    return "the deadline ran out" + (f" (last status {call.last_status})" if call.last_status else "")


def replayable(request: httpx.Request) -> bool:
    """True when the request body can be sent again (none, or bytes httpx holds in memory)."""
    return isinstance(request.stream, httpx.ByteStream)


def clamped_timeouts(timeouts: Mapping[str, Any] | None, remaining: float | None) -> dict[str, Any] | None:
    """httpx's per-request ``timeout`` extension with every value at most *remaining* seconds."""
    if remaining is None:
        return None if timeouts is None else dict(timeouts)
    left = max(remaining, 0.001)
    clamped = dict(timeouts or {})
    for name in ("connect", "read", "write", "pool"):
        value = clamped.get(name)
        clamped[name] = left if value is None else min(float(value), left)
    return clamped
