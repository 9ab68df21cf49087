"""Typed errors.

Every error is an instance of :class:`APIError` *and* of the exception plain ``requests`` raises in the
same situation, so ``except requests.ReadTimeout`` in legacy code keeps catching what it caught before.

Each error carries ``method``, ``url`` (credentials redacted), ``attempts`` made, ``elapsed`` seconds and
the last HTTP ``status`` seen (``None`` when no response arrived). Messages never contain secrets.
"""

from __future__ import annotations

from typing import Any

import requests
from requests import exceptions as rexc

from ._redact import redact_log_text, redact_url

__all__ = [
    "APIConnectTimeout",
    "APIConnectionError",
    "APIError",
    "APIProxyError",
    "APIReadTimeout",
    "APISSLError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BulkheadFullError",
    "CircuitOpenError",
    "ClientError",
    "ConfigurationError",
    "DeadlineExceededError",
    "IncompleteBodyError",
    "InvalidConfigError",
    "MalformedResponseError",
    "NotFoundError",
    "OAuth2TokenError",
    "QuotaExceededError",
    "RateLimitedError",
    "RetryExhaustedError",
    "SchemaMismatchError",
    "ServerError",
    "StalledBodyError",
    "TokenEndpointError",
    "TokenEndpointTimeout",
    "status_error_class",
    "status_error_for",
]


class APIError(rexc.RequestException):
    """Base of every error raised by resilient-session.

    Shaped as requests' own: a twin of a transport failure carries the urllib3 exception as
    ``args[0]`` (``error.args[0].reason`` reads as it does in requests), as a copy whose URLs and
    messages have their secrets redacted; other errors carry a message.
    """

    def __init__(
        self,
        *args: Any,
        request: Any = None,
        response: Any = None,
        method: str | None = None,
        url: str | None = None,
        attempts: int = 0,
        elapsed: float = 0.0,
        status: int | None = None,
    ) -> None:
        if request is not None:
            method = method or getattr(request, "method", None)
            url = url or getattr(request, "url", None)
        if response is not None and status is None:
            status = getattr(response, "status_code", None)
        super().__init__(*args, request=request, response=response)
        self.method = method
        self.url = redact_url(url) if url else url
        self.attempts = attempts
        self.elapsed = elapsed
        self.status = status

    @property
    def last_status(self) -> int | None:
        """The last HTTP status seen (same as ``status``)."""
        return self.status

    def __str__(self) -> str:
        message = super().__str__()
        context = [f"{k}={v}" for k, v in self._context() if v not in (None, "", 0, 0.0)]
        return f"{message} [{', '.join(context)}]" if context else message

    def _context(self) -> list[tuple[str, Any]]:
        elapsed = f"{self.elapsed:.3f}s" if self.elapsed else None
        return [
            ("method", self.method),
            ("url", self.url),
            ("status", self.status),
            ("attempts", self.attempts),
            ("elapsed", elapsed),
        ]

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException pickles only ``args``; keep the context (request/response are not picklable reliably).
        # The instance dict already holds method, url, attempts, elapsed, status and any subclass fields.
        state = {k: v for k, v in self.__dict__.items() if k not in ("request", "response")}
        return (_rebuild, (type(self), self.args, state))


def redacted(value: Any) -> Any:
    """A copy of *value* (an exception, or text) with URLs, secret-named values and known secrets
    redacted, recursively through the exceptions it holds; urllib3 puts the request path with its query
    (``?api_key=...``) in its messages and its ``url`` attributes."""
    if isinstance(value, str):
        return redact_log_text(value)
    if not isinstance(value, BaseException):
        return value
    cls = type(value)
    copy = cls.__new__(cls)
    copy.args = tuple(redacted(arg) for arg in value.args)
    for name, attr in vars(value).items():
        if name == "url" and isinstance(attr, str):
            attr = redact_url(attr)
        elif isinstance(attr, (BaseException, str)) and name != "pool":
            attr = redacted(attr)
        copy.__dict__[name] = attr
    return copy


def _rebuild(cls: type[APIError], args: tuple[Any, ...], state: dict[str, Any]) -> APIError:
    error = cls.__new__(cls)
    error.args = args
    error.request = None
    error.response = None
    error.__dict__.update(state)
    return error


class ConfigurationError(APIError, ValueError):
    """A session, auth or integration was configured wrongly (never names a secret's value)."""


class APITimeoutError(APIError, rexc.Timeout):
    """The upstream did not answer in time."""


class APIConnectTimeout(APITimeoutError, rexc.ConnectTimeout):
    """No connection could be made within the connect timeout."""


class APIReadTimeout(APITimeoutError, rexc.ReadTimeout):
    """The upstream accepted the connection but sent nothing within the read timeout."""


class StalledBodyError(APIReadTimeout, rexc.ConnectionError):
    """The body stopped arriving mid-way (requests raises ``ConnectionError`` here, hence both)."""


class DeadlineExceededError(APITimeoutError):
    """The call's total deadline (attempts and backoff included) ran out."""


class APIConnectionError(APIError, rexc.ConnectionError):
    """The connection was refused, reset or dropped."""


class APISSLError(APIConnectionError, rexc.SSLError):
    """TLS failed."""


class APIProxyError(APIConnectionError, rexc.ProxyError):
    """The proxy failed."""


class IncompleteBodyError(APIError, rexc.ChunkedEncodingError):
    """The connection broke while the body was being read (reset, or fewer bytes than Content-Length)."""


class RetryExhaustedError(APIError, rexc.RetryError):
    """Every retry was used and the policy was told to raise (``raise_on_status=True``)."""


class APIStatusError(APIError, requests.HTTPError):
    """The upstream answered with a 4xx or 5xx status. ``retry_after`` is the wait its ``Retry-After``
    header asked for, in seconds (``None`` without one): a wait the call did not sleep, because it would
    not fit in the deadline or the retries had run out, is the caller's to honour."""

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        headers = getattr(self.response, "headers", None)
        if retry_after is None and headers is not None:
            retry_after = parse_retry_after(headers.get("Retry-After"))
        self.retry_after = retry_after


class ClientError(APIStatusError):
    """A 4xx answer."""


class AuthenticationError(ClientError):
    """401 or 403: credentials missing, wrong or expired."""


class NotFoundError(ClientError):
    """404 or 410."""


class RateLimitedError(ClientError):
    """429; ``retry_after`` is the server's requested wait in seconds, if it said one."""


class ServerError(APIStatusError):
    """A 5xx answer."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or ``None``.

    Always finite, clamped to ``[0, 86400]`` (see ``resilient_session._numbers.parse_retry_after``).
    """
    from ._numbers import parse_retry_after as parse

    return parse(value)


def status_error_class(status: int) -> type[APIStatusError]:
    """The :class:`APIStatusError` subclass for an HTTP *status* (400-599)."""
    if status in (401, 403):
        return AuthenticationError
    if status in (404, 410):
        return NotFoundError
    if status == 429:
        return RateLimitedError
    if 400 <= status < 500:
        return ClientError
    if status >= 500:
        return ServerError
    return APIStatusError


def status_error_for(
    response: requests.Response, *, attempts: int = 0, elapsed: float | None = None
) -> APIStatusError | None:
    """The typed error for a 4xx/5xx *response*, or ``None`` when the status is not an error."""
    status = response.status_code
    if status < 400:
        return None
    cls = status_error_class(status)
    reason = response.reason or ""
    kind = "Client Error" if status < 500 else "Server Error"
    message = f"{status} {kind}: {reason}".rstrip(": ")
    return cls(
        message,
        request=response.request,
        response=response,
        url=response.url,
        attempts=attempts,
        elapsed=response.elapsed.total_seconds() if elapsed is None else elapsed,
        status=status,
    )


class TokenEndpointError(APIConnectionError):
    """The OAuth2 token endpoint could not be used: refused or dropped connection, 5xx, 408/429, or an
    answer that is not a token. ``status`` is its HTTP status when it answered."""


class TokenEndpointTimeout(TokenEndpointError, APITimeoutError):
    """The OAuth2 token endpoint did not answer in time."""


class OAuth2TokenError(AuthenticationError):
    """The token endpoint refused the grant (``invalid_client``, ``invalid_grant``, ``invalid_scope`` ...);
    ``error`` is the OAuth2 error code. Retrying will not help until the credentials change."""

    def __init__(self, message: str = "", *, error: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.error = error


class CircuitOpenError(APIError, rexc.ConnectionError):
    """The circuit for ``host`` is open: the call was refused without opening a socket.

    ``retry_in`` is the number of seconds until the circuit lets a probe through (``retry_after`` is
    the same number, under the name :class:`RateLimitedError` uses).
    """

    def __init__(self, message: str = "", *, host: str = "", retry_in: float = 0.0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.host = host
        self.retry_in = retry_in

    @property
    def retry_after(self) -> float:
        """Seconds until the next probe (same as ``retry_in``)."""
        return self.retry_in


class BulkheadFullError(APIError, rexc.ConnectionError):
    """``max_concurrent`` calls to ``host`` were already in flight and none finished within ``waited``
    seconds; the call was refused without opening a socket."""

    def __init__(
        self,
        message: str = "",
        *,
        host: str = "",
        max_concurrent: int = 0,
        waited: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.host = host
        self.max_concurrent = max_concurrent
        self.waited = waited


class QuotaExceededError(APIError, rexc.ConnectionError):
    """The rate limit of ``key`` (an integration or ``scheme://host:port``) has no slot for this call
    within its time left: refused without sending. ``retry_after`` is the number of seconds until a
    slot would be free, ``rate`` the rate in force (calls per second, ``None`` while the upstream
    holds every call back)."""

    #: The failure a :class:`~resilient_session.policies.Degrade` policy knows it by.
    degrade_reason = "quota"

    def __init__(
        self,
        message: str = "",
        *,
        key: str = "",
        retry_after: float = 0.0,
        rate: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.key = key
        self.retry_after = retry_after
        self.rate = rate


class MalformedResponseError(APIError, ValueError):
    """The body could not be used: malformed (``code`` ``"malformed_response"``), over the size limit
    (``"body_too_large"``) or unreadable (``"body_unavailable"``); ``details`` says more.

    A ``ValueError`` like the ``JSONDecodeError`` that ``response.json()`` raises on a malformed body.
    """

    def __init__(
        self, message: str = "", *, code: str = "malformed_response", details: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.code = code
        self.details = dict(details or {})


class SchemaMismatchError(MalformedResponseError):
    """A well-formed body that does not fit the caller's type (``response.normalized.into(Model)``):
    schema drift. ``code`` is ``"schema_mismatch"``.

    ``mismatches`` holds one :class:`~resilient_session.normalization.Mismatch` per failing place (its
    path, what was expected, the kind of value received); ``unknown`` the paths of fields the type does not
    declare. ``model`` names the type, ``integration``, ``route`` and ``request_id`` the call. Neither the
    message nor any attribute holds a value of the body: it may carry personal data or secrets.
    """

    def __init__(
        self,
        message: str = "",
        *,
        mismatches: tuple[Any, ...] = (),
        unknown: tuple[str, ...] = (),
        model: str = "",
        integration: str | None = None,
        route: str | None = None,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("code", "schema_mismatch")
        super().__init__(message, **kwargs)
        self.mismatches = tuple(mismatches)
        self.unknown = tuple(unknown)
        self.model = model
        self.integration = integration
        self.route = route
        self.request_id = request_id

    def _context(self) -> list[tuple[str, Any]]:
        return [*super()._context(), ("integration", self.integration), ("request_id", self.request_id)]


class InvalidConfigError(ConfigurationError):
    """An integrations file is invalid; ``problems`` lists every problem found, each with its location
    (``integrations.stripe.retry.total: expected an integer, got "three"``)."""

    def __init__(self, message: str = "", *, problems: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.problems = tuple(problems)
