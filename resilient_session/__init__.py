"""resilient-session: a drop-in ``requests.Session`` with the error handling every integration needs."""

from __future__ import annotations

from .adapter import DEFAULT_TIMEOUT, ResilientAdapter
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
from .retry import RetryPolicy
from .session import ResilientSession

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
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
    "ResilientAdapter",
    "ResilientSession",
    "RetryExhaustedError",
    "RetryPolicy",
    "ServerError",
    "StalledBodyError",
    "__version__",
]
