"""resilient-session: a drop-in ``requests.Session`` with the error handling every integration needs."""

from __future__ import annotations

from .errors import (
    APIConnectionError,
    APIConnectTimeout,
    APIError,
    APIProxyError,
    APIReadTimeout,
    APISSLError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ClientError,
    ConfigurationError,
    DeadlineExceededError,
    IncompleteBodyError,
    NotFoundError,
    RateLimitedError,
    RetryExhaustedError,
    ServerError,
    StalledBodyError,
)

__version__ = "0.1.0"

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
    "ClientError",
    "ConfigurationError",
    "DeadlineExceededError",
    "IncompleteBodyError",
    "NotFoundError",
    "RateLimitedError",
    "RetryExhaustedError",
    "ServerError",
    "StalledBodyError",
    "__version__",
]
