"""Typed errors of the httpx transports and clients: each is our error *and* httpx's.

Every class here subclasses the typed error the requests session raises in the same situation (so it
is also that error's ``requests`` exception) and the exception httpx raises there, so both
``except resilient_session.APIReadTimeout`` and ``except httpx.ReadTimeout`` catch it:

==================================  ================================  =============================
raised                              ours (and requests')              httpx's
==================================  ================================  =============================
:class:`HTTPXConnectTimeout`        ``APIConnectTimeout``             ``httpx.ConnectTimeout``
:class:`HTTPXReadTimeout`           ``APIReadTimeout``                ``httpx.ReadTimeout``
:class:`HTTPXWriteTimeout`          ``APITimeoutError``               ``httpx.WriteTimeout``
:class:`HTTPXPoolTimeout`           ``APITimeoutError``               ``httpx.PoolTimeout``
:class:`HTTPXStalledBody`           ``StalledBodyError``              ``httpx.ReadTimeout``
:class:`HTTPXDeadlineExceeded`      ``DeadlineExceededError``         ``httpx.TimeoutException``
:class:`HTTPXConnectError`          ``APIConnectionError``            ``httpx.ConnectError``
:class:`HTTPXSSLError`              ``APISSLError``                   ``httpx.ConnectError``
:class:`HTTPXProxyError`            ``APIProxyError``                 ``httpx.ProxyError``
:class:`HTTPXReadError`             ``APIConnectionError``            ``httpx.ReadError``
:class:`HTTPXWriteError`            ``APIConnectionError``            ``httpx.WriteError``
:class:`HTTPXRemoteProtocolError`   ``APIConnectionError``            ``httpx.RemoteProtocolError``
:class:`HTTPXIncompleteBody`        ``IncompleteBodyError``           ``httpx.RemoteProtocolError``
:class:`HTTPXBodyReadError`         ``IncompleteBodyError``           ``httpx.ReadError``
:class:`HTTPXCircuitOpen`           ``CircuitOpenError``              ``httpx.ConnectError``
:class:`HTTPXBulkheadFull`          ``BulkheadFullError``             ``httpx.PoolTimeout``
:class:`HTTPXTokenEndpointError`    ``TokenEndpointError``            ``httpx.ConnectError``
:class:`HTTPXTokenEndpointTimeout`  ``TokenEndpointTimeout``          ``httpx.ConnectTimeout``
:class:`HTTPXRetryExhausted`        ``RetryExhaustedError``           ``httpx.HTTPStatusError``
:class:`HTTPXStatusError` and kin   ``APIStatusError`` and kin        ``httpx.HTTPStatusError``
==================================  ================================  =============================

A refused call (open circuit, full bulkhead) is httpx's "could not get a connection" error, so code that
treats ``httpx.TransportError`` as "the upstream is unavailable" keeps doing so. ``error.request`` is
the ``httpx.Request``, ``error.response`` the ``httpx.Response`` (status errors). Messages and the
exceptions they carry never contain secrets: the httpx exception a failure began as is kept only as
its class name, with its message redacted.
"""

from __future__ import annotations

from typing import Any

import httpx

from .. import errors as ours

# Each class below joins a requests exception (``request``/``response`` plain attributes) and an httpx
# one (``request`` a property, set through its setter by requests' __init__): mypy sees two definitions
# of the same attribute, which at run time agree (see tests/test_httpx_errors.py).

__all__ = [
    "HTTPXAuthenticationError",
    "HTTPXBodyReadError",
    "HTTPXBulkheadFull",
    "HTTPXCircuitOpen",
    "HTTPXClientError",
    "HTTPXConnectError",
    "HTTPXConnectTimeout",
    "HTTPXDeadlineExceeded",
    "HTTPXIncompleteBody",
    "HTTPXNotFoundError",
    "HTTPXPoolTimeout",
    "HTTPXProxyError",
    "HTTPXRateLimitedError",
    "HTTPXReadError",
    "HTTPXReadTimeout",
    "HTTPXRemoteProtocolError",
    "HTTPXRetryExhausted",
    "HTTPXSSLError",
    "HTTPXServerError",
    "HTTPXStalledBody",
    "HTTPXStatusError",
    "HTTPXTokenEndpointError",
    "HTTPXTokenEndpointTimeout",
    "HTTPXWriteError",
    "HTTPXWriteTimeout",
    "status_error_for",
]


class HTTPXConnectTimeout(ours.APIConnectTimeout, httpx.ConnectTimeout):  # type: ignore[misc]
    """No connection within the connect timeout."""


class HTTPXReadTimeout(ours.APIReadTimeout, httpx.ReadTimeout):  # type: ignore[misc]
    """Connected, then no answer within the read timeout."""


class HTTPXWriteTimeout(ours.APITimeoutError, httpx.WriteTimeout):  # type: ignore[misc]
    """The request could not be sent within the write timeout."""


class HTTPXPoolTimeout(ours.APITimeoutError, httpx.PoolTimeout):  # type: ignore[misc]
    """No connection of the pool freed up within the pool timeout."""


class HTTPXStalledBody(ours.StalledBodyError, httpx.ReadTimeout):  # type: ignore[misc]
    """The body stopped arriving mid-way for longer than the read timeout."""


class HTTPXDeadlineExceeded(ours.DeadlineExceededError, httpx.TimeoutException):  # type: ignore[misc]
    """The call's deadline ran out (attempts, backoff, token fetch and body included)."""


class HTTPXConnectError(ours.APIConnectionError, httpx.ConnectError):  # type: ignore[misc]
    """The connection was refused, or the host could not be resolved."""


class HTTPXSSLError(ours.APISSLError, httpx.ConnectError):  # type: ignore[misc]
    """The TLS handshake failed."""


class HTTPXProxyError(ours.APIProxyError, httpx.ProxyError):  # type: ignore[misc]
    """The proxy failed."""


class HTTPXReadError(ours.APIConnectionError, httpx.ReadError):  # type: ignore[misc]
    """The connection broke before the answer's headers arrived."""


class HTTPXWriteError(ours.APIConnectionError, httpx.WriteError):  # type: ignore[misc]
    """The connection broke while the request was being sent."""


class HTTPXRemoteProtocolError(ours.APIConnectionError, httpx.RemoteProtocolError):  # type: ignore[misc]
    """The server closed the connection, or broke the protocol, before answering."""


class HTTPXIncompleteBody(ours.IncompleteBodyError, httpx.RemoteProtocolError):  # type: ignore[misc]
    """The body ended early: fewer bytes than ``Content-Length``, or a broken chunked encoding."""


class HTTPXBodyReadError(ours.IncompleteBodyError, httpx.ReadError):  # type: ignore[misc]
    """The connection was reset while the body was being read."""


class HTTPXCircuitOpen(ours.CircuitOpenError, httpx.ConnectError):  # type: ignore[misc]
    """The circuit is open: the call was refused without opening a socket."""


class HTTPXBulkheadFull(ours.BulkheadFullError, httpx.PoolTimeout):  # type: ignore[misc]
    """Too many calls to the host in flight: refused without opening a socket."""


class HTTPXTokenEndpointError(ours.TokenEndpointError, httpx.ConnectError):  # type: ignore[misc]
    """The OAuth2 token endpoint could not be used (refused, dropped, 5xx, not a token)."""


class HTTPXTokenEndpointTimeout(ours.TokenEndpointTimeout, httpx.ConnectTimeout):  # type: ignore[misc]
    """The OAuth2 token endpoint did not answer in time."""


class HTTPXRetryExhausted(ours.RetryExhaustedError, httpx.HTTPStatusError):  # type: ignore[misc]
    """Every retry was used on a retryable status and the policy says ``raise_on_status``."""


class HTTPXStatusError(ours.APIStatusError, httpx.HTTPStatusError):  # type: ignore[misc]
    """A 4xx or 5xx answer (``raise_for_status=True``)."""


class HTTPXClientError(ours.ClientError, HTTPXStatusError):  # type: ignore[misc]
    """A 4xx answer."""


class HTTPXAuthenticationError(ours.AuthenticationError, HTTPXClientError):  # type: ignore[misc]
    """401 or 403."""


class HTTPXNotFoundError(ours.NotFoundError, HTTPXClientError):  # type: ignore[misc]
    """404 or 410."""


class HTTPXRateLimitedError(ours.RateLimitedError, HTTPXClientError):  # type: ignore[misc]
    """429; ``retry_after`` is the wait the server asked for."""


class HTTPXServerError(ours.ServerError, HTTPXStatusError):  # type: ignore[misc]
    """A 5xx answer."""


def status_error_for(
    response: httpx.Response, *, attempts: int = 0, elapsed: float = 0.0
) -> HTTPXStatusError | None:
    """The typed error for a 4xx/5xx *response*, or ``None`` below 400."""
    status = response.status_code
    if status < 400:
        return None
    cls: type[HTTPXStatusError]
    if status in (401, 403):
        cls = HTTPXAuthenticationError
    elif status in (404, 410):
        cls = HTTPXNotFoundError
    elif status == 429:
        cls = HTTPXRateLimitedError
    elif status < 500:
        cls = HTTPXClientError
    else:
        cls = HTTPXServerError
    kind = "Client Error" if status < 500 else "Server Error"
    message = f"{status} {kind}: {response.reason_phrase}".rstrip(": ")
    return cls(message, **context(response.request, response=response, attempts=attempts, elapsed=elapsed))


def context(request: httpx.Request, *, response: httpx.Response | None = None, **more: Any) -> dict[str, Any]:
    """The keywords every error here takes: the request, its method and URL as text, and *more*."""
    kwargs: dict[str, Any] = {"request": request, "method": request.method, "url": str(request.url)}
    if response is not None:
        kwargs["response"] = response
    kwargs.update(more)
    return kwargs
