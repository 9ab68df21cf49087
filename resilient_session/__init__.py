"""resilient-session: a drop-in ``requests.Session`` with the error handling every integration needs.

The top level holds what most code uses: the session and its adapter, the policies, the auth classes,
the errors worth catching, and :func:`install`/:func:`uninstall` (the framework for every requests session
of the process). Everything else lives in a subpackage by concept:

- :mod:`resilient_session.errors`: every error class (the rare ones: proxy, TLS, token endpoint ...);
- :mod:`resilient_session.policies`: breaker, budget, bulkhead and rate limit, with their state types;
- :mod:`resilient_session.stores`: where policy state lives (memory, Redis, custom stores);
- :mod:`resilient_session.auth`: API keys, bearer, Basic, OAuth 2;
- :mod:`resilient_session.normalization`: the normalized view of responses and errors;
- :mod:`resilient_session.observe`: call events, request ids, log redaction, tracing;
- :mod:`resilient_session.config`: the integrations file;
- :mod:`resilient_session.registry`: integrations registered once for the whole process;
- :mod:`resilient_session.testing`: ``responses`` scenarios, the chaos server, the pytest plugin;
- :mod:`resilient_session.contrib.flask`: the Flask integration;
- :mod:`resilient_session.httpx`: the same integrations for httpx, async and sync (the ``httpx`` extra).
"""

from __future__ import annotations

import importlib
import logging
import warnings
from typing import TYPE_CHECKING, Any

from ._install import install, uninstall
from ._version import __version__
from .adapter import ResilientAdapter
from .auth import APIKeyAuth, BasicAuth, BearerAuth, OAuth2ClientCredentials, OAuth2RefreshToken
from .config import load_integrations
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BulkheadFullError,
    CircuitOpenError,
    ClientError,
    ConfigurationError,
    DeadlineExceededError,
    InvalidConfigError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    RetryExhaustedError,
    ServerError,
)
from .normalization import normalize
from .observe.logging import redact_own_logs
from .policies import Bulkhead, CircuitBreaker, RetryBudget
from .retry import RetryPolicy
from .session import ResilientSession

if TYPE_CHECKING:  # the deprecated top-level names below, for type checkers
    from .adapter import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
    from .auth import CredentialAuth as CredentialAuth
    from .config import load_config as load_config
    from .errors import APIConnectTimeout as APIConnectTimeout
    from .errors import APIProxyError as APIProxyError
    from .errors import APIReadTimeout as APIReadTimeout
    from .errors import APISSLError as APISSLError
    from .errors import IncompleteBodyError as IncompleteBodyError
    from .errors import OAuth2TokenError as OAuth2TokenError
    from .errors import StalledBodyError as StalledBodyError
    from .errors import TokenEndpointError as TokenEndpointError
    from .errors import TokenEndpointTimeout as TokenEndpointTimeout
    from .normalization import NormalizedError as NormalizedError
    from .normalization import NormalizedResponse as NormalizedResponse
    from .normalization import Normalizer as Normalizer
    from .observe import BudgetExhausted as BudgetExhausted
    from .observe import CallEvent as CallEvent
    from .observe import Events as Events
    from .observe import bind_request_id as bind_request_id
    from .observe import current_request_id as current_request_id
    from .policies import CircuitState as CircuitState
    from .policies import StateChange as StateChange
    from .stores import MemoryStore as MemoryStore
    from .stores import RedisStore as RedisStore
    from .stores import StateStore as StateStore

# What the logging HOWTO asks of a library: a NullHandler on our own top-level logger and nothing else, so
# an application that never configured logging does not get our WARNINGs on stderr through
# ``logging.lastResort``; one that did configure logging sees every record as before.
logging.getLogger("resilient_session").addHandler(logging.NullHandler())
# Records of our own loggers never carry a secret; other libraries' loggers: observe.redact_library_logs().
redact_own_logs()

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIKeyAuth",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BasicAuth",
    "BearerAuth",
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientError",
    "ConfigurationError",
    "DeadlineExceededError",
    "InvalidConfigError",
    "MalformedResponseError",
    "NotFoundError",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "RateLimitedError",
    "ResilientAdapter",
    "ResilientSession",
    "RetryBudget",
    "RetryExhaustedError",
    "RetryPolicy",
    "ServerError",
    "__version__",
    "install",
    "load_integrations",
    "normalize",
    "uninstall",
]

# Names the top level exported before the subpackages; importable from here for one more release.
_MOVED = {
    "DEFAULT_TIMEOUT": "adapter",
    "CredentialAuth": "auth",
    "load_config": "config",
    **dict.fromkeys(
        [
            "APIConnectTimeout",
            "APIProxyError",
            "APIReadTimeout",
            "APISSLError",
            "IncompleteBodyError",
            "OAuth2TokenError",
            "StalledBodyError",
            "TokenEndpointError",
            "TokenEndpointTimeout",
        ],
        "errors",
    ),
    **dict.fromkeys(["NormalizedError", "NormalizedResponse", "Normalizer"], "normalization"),
    **dict.fromkeys(
        ["BudgetExhausted", "CallEvent", "Events", "bind_request_id", "current_request_id"], "observe"
    ),
    **dict.fromkeys(["CircuitState", "StateChange"], "policies"),
    **dict.fromkeys(["MemoryStore", "RedisStore", "StateStore"], "stores"),
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"resilient_session.{name} moved to resilient_session.{module}.{name}; import it from there",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_MOVED})
