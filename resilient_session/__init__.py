"""resilient-session: a drop-in ``requests.Session`` with the error handling every integration needs."""

from __future__ import annotations

import logging

from .adapter import DEFAULT_TIMEOUT, ResilientAdapter
from .auth import (
    APIKeyAuth,
    BasicAuth,
    BearerAuth,
    CredentialAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from .config import load_config, load_integrations
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
    BulkheadFullError,
    CircuitOpenError,
    ClientError,
    ConfigurationError,
    DeadlineExceededError,
    IncompleteBodyError,
    InvalidConfigError,
    MalformedResponseError,
    NotFoundError,
    OAuth2TokenError,
    RateLimitedError,
    RetryExhaustedError,
    ServerError,
    StalledBodyError,
    TokenEndpointError,
    TokenEndpointTimeout,
)
from .normalization import NormalizedError, NormalizedResponse, Normalizer, normalize
from .observe import BudgetExhausted, CallEvent, Events, bind_request_id, current_request_id
from .policies import CircuitBreaker, CircuitState, StateChange
from .policies.budget import RetryBudget
from .policies.bulkhead import Bulkhead
from .retry import RetryPolicy
from .session import ResilientSession
from .stores import MemoryStore, RedisStore, StateStore

# What the logging HOWTO asks of a library: a NullHandler on our own top-level logger and nothing else, so
# an application that never configured logging does not get our WARNINGs on stderr through
# ``logging.lastResort``; one that did configure logging sees every record as before.
logging.getLogger("resilient_session").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_TIMEOUT",
    "APIConnectTimeout",
    "APIConnectionError",
    "APIError",
    "APIKeyAuth",
    "APIProxyError",
    "APIReadTimeout",
    "APISSLError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BasicAuth",
    "BearerAuth",
    "BudgetExhausted",
    "Bulkhead",
    "BulkheadFullError",
    "CallEvent",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "ClientError",
    "ConfigurationError",
    "CredentialAuth",
    "DeadlineExceededError",
    "Events",
    "IncompleteBodyError",
    "InvalidConfigError",
    "MalformedResponseError",
    "MemoryStore",
    "NormalizedError",
    "NormalizedResponse",
    "Normalizer",
    "NotFoundError",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "OAuth2TokenError",
    "RateLimitedError",
    "RedisStore",
    "ResilientAdapter",
    "ResilientSession",
    "RetryBudget",
    "RetryExhaustedError",
    "RetryPolicy",
    "ServerError",
    "StalledBodyError",
    "StateChange",
    "StateStore",
    "TokenEndpointError",
    "TokenEndpointTimeout",
    "__version__",
    "bind_request_id",
    "current_request_id",
    "load_config",
    "load_integrations",
    "normalize",
]
