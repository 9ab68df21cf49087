"""How a call's failures reach the caller: requests' own exceptions, and their typed twins.

:func:`as_requests_error` is what requests' ``HTTPAdapter.send`` raises for a urllib3 error (the retry
loop runs outside urllib3, so the error a ``Retry`` raised when it ran out is translated here, as
requests would have translated it); :func:`typed` turns requests' exceptions into
:mod:`resilient_session.errors` types, shaped as requests' own (the urllib3 exception first, URLs
redacted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from requests import exceptions as rexc
from urllib3 import exceptions as u3

from . import errors

if TYPE_CHECKING:
    from ._call import CallState

__all__ = ["DEADLINE_SLACK", "as_requests_error", "context", "deadline_error", "too_large", "typed"]

# Slack under which a timeout counts as "the deadline ran out" rather than "the upstream was slow".
DEADLINE_SLACK = 0.005


def as_requests_error(error: BaseException, request: requests.PreparedRequest) -> BaseException:
    """What requests' ``HTTPAdapter.send`` raises when urllib3's ``urlopen`` raises *error* (its except
    clauses, in their order; tests/test_failures.py checks every branch against requests' own code)."""
    if isinstance(error, (u3.ProtocolError, OSError)):
        return rexc.ConnectionError(error, request=request)
    if isinstance(error, u3.MaxRetryError):
        reason = error.reason
        if isinstance(reason, u3.ConnectTimeoutError) and not isinstance(reason, u3.NewConnectionError):
            return rexc.ConnectTimeout(error, request=request)
        if isinstance(reason, u3.ResponseError):
            return rexc.RetryError(error, request=request)
        if isinstance(reason, u3.ProxyError):
            return rexc.ProxyError(error, request=request)
        if isinstance(reason, u3.SSLError):
            return rexc.SSLError(error, request=request)
        return rexc.ConnectionError(error, request=request)
    if isinstance(error, u3.ClosedPoolError):
        return rexc.ConnectionError(error, request=request)
    if isinstance(error, u3.ProxyError):
        return rexc.ProxyError(error)
    if isinstance(error, u3.SSLError):
        return rexc.SSLError(error, request=request)
    if isinstance(error, u3.ReadTimeoutError):
        return rexc.ReadTimeout(error, request=request)
    if isinstance(error, u3.InvalidHeader):
        return rexc.InvalidHeader(error, request=request)
    return error


def context(call: CallState, request: requests.PreparedRequest) -> dict[str, Any]:
    """What every typed error of the call carries."""
    return {
        "request": request,
        "attempts": call.attempts,
        "elapsed": call.elapsed(),
        "status": call.last_status,
    }


def deadline_error(
    call: CallState, request: requests.PreparedRequest, what: str
) -> errors.DeadlineExceededError:
    return errors.DeadlineExceededError(what, **context(call, request))


def too_large(
    limit: int, response: requests.Response, call: CallState, request: requests.PreparedRequest
) -> errors.MalformedResponseError:
    return errors.MalformedResponseError(
        f"the decoded body passed max_response_size ({limit} bytes); nothing more was read",
        code="body_too_large",
        details={"limit": limit},
        response=response,
        **context(call, request),
    )


def typed(exc: BaseException, call: CallState, request: requests.PreparedRequest) -> BaseException:
    """The typed twin of *exc*, shaped as requests' own (the urllib3 exception first, its URLs redacted).

    Only requests' and urllib3's own classes are translated: a subclass an adapter or a mock raises
    (``requests_mock``'s ``exc=``, a ``responses`` body) is the caller's, and reaches them as the same
    object; so do ours and those that signal programming errors.
    """
    if (
        not isinstance(exc, rexc.RequestException)
        or isinstance(exc, errors.APIError)
        or type(exc).__module__ not in _TRANSLATED_MODULES
    ):
        return exc
    cause = innermost(exc)
    ctx = context(call, request)
    first = errors.redacted(exc.args[0]) if exc.args else None
    args = (first,) if first is not None else ()
    if call.deadline_passed(DEADLINE_SLACK):
        detail = _describe(cause)
        error: rexc.RequestException = errors.DeadlineExceededError(f"the deadline ran out: {detail}", **ctx)
        error.__cause__ = errors.redacted(cause)
        return error
    if isinstance(exc, rexc.ConnectionError) and isinstance(cause, u3.ReadTimeoutError):
        # Retries exhausted on read timeouts arrive wrapped in MaxRetryError; a stall mid-body
        # arrives bare, from requests' iter_content.
        mid_body = not isinstance(exc.args[0], u3.MaxRetryError)
        cls = errors.StalledBodyError if mid_body else errors.APIReadTimeout
        return cls(*args, **ctx)
    for theirs, ours in _TWINS:
        if isinstance(exc, theirs):
            return ours(*args, **ctx)
    return exc


# Where the exception classes live that become typed errors (exact classes, not their subclasses).
_TRANSLATED_MODULES = frozenset({rexc.RequestException.__module__, u3.MaxRetryError.__module__})

# requests' exception -> our twin, most specific first (ConnectTimeout is also a ConnectionError ...).
_TWINS: tuple[tuple[type[rexc.RequestException], type[errors.APIError]], ...] = (
    (rexc.ConnectTimeout, errors.APIConnectTimeout),
    (rexc.ReadTimeout, errors.APIReadTimeout),
    (rexc.RetryError, errors.RetryExhaustedError),
    (rexc.ChunkedEncodingError, errors.IncompleteBodyError),
    (rexc.SSLError, errors.APISSLError),
    (rexc.ProxyError, errors.APIProxyError),
    (rexc.ConnectionError, errors.APIConnectionError),
)


def innermost(exc: BaseException) -> BaseException:
    """Walk requests' and urllib3's wrappers down to the error that happened on the wire."""
    seen = exc
    for _ in range(5):
        if isinstance(seen, u3.MaxRetryError) and seen.reason is not None:
            seen = seen.reason
        elif (
            isinstance(seen, rexc.RequestException) and seen.args and isinstance(seen.args[0], BaseException)
        ):
            seen = seen.args[0]
        else:
            break
    return seen


def _describe(cause: BaseException) -> str:
    # urllib3's own messages name the pool and sometimes the path with its query: keep only the reason.
    if isinstance(cause, u3.ProtocolError) and len(cause.args) > 1:
        return f"{cause.args[0]} {cause.args[1]!r}"
    text = str(cause)
    if "): " in text:
        text = text.split("): ", 1)[1]
    return text or type(cause).__name__
