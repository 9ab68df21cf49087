"""httpx transports and clients driven by the same policies, state and errors as the requests session.

Needs the ``httpx`` extra (``pip install "resilient-session[httpx]"``). See ``docs/async.md``.
"""

from __future__ import annotations

from .auth import HTTPXAuth, as_httpx_auth
from .client import DEFAULT_HTTPX_TIMEOUT, AsyncResilientClient, ResilientClient, httpx_timeout
from .errors import (
    HTTPXAuthenticationError,
    HTTPXBodyReadError,
    HTTPXBulkheadFull,
    HTTPXCircuitOpen,
    HTTPXClientError,
    HTTPXConnectError,
    HTTPXConnectTimeout,
    HTTPXDeadlineExceeded,
    HTTPXIncompleteBody,
    HTTPXNotFoundError,
    HTTPXPoolTimeout,
    HTTPXProxyError,
    HTTPXRateLimitedError,
    HTTPXReadError,
    HTTPXReadTimeout,
    HTTPXRemoteProtocolError,
    HTTPXRetryExhausted,
    HTTPXServerError,
    HTTPXSSLError,
    HTTPXStalledBody,
    HTTPXStatusError,
    HTTPXTokenEndpointError,
    HTTPXTokenEndpointTimeout,
    HTTPXWriteError,
    HTTPXWriteTimeout,
)
from .response import ResilientResponse
from .transport import AsyncResilientTransport, ResilientTransport

__all__ = [
    "DEFAULT_HTTPX_TIMEOUT",
    "AsyncResilientClient",
    "AsyncResilientTransport",
    "HTTPXAuth",
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
    "ResilientClient",
    "ResilientResponse",
    "ResilientTransport",
    "as_httpx_auth",
    "httpx_timeout",
]
