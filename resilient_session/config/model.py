"""One integration, validated: its settings, and the session constructor arguments they make."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from requests.auth import AuthBase

from ..adapter import DEFAULT_TIMEOUT
from ..observe.request_id import DEFAULT_REQUEST_ID_HEADER
from ..policies.breaker import CircuitBreaker
from ..policies.budget import RetryBudget
from ..policies.bulkhead import Bulkhead
from ..policies.ratelimit import RateLimit
from ..retry import RetryPolicy
from ..stores.base import StateStore
from ..stores.memory import MemoryStore

__all__ = ["AuthConfig", "IntegrationConfig"]


@dataclass(frozen=True)
class AuthConfig:
    """An auth table: its ``type``, the environment variables holding its secrets, and its other options.

    ``env`` maps option names (``"token_env"``) to environment variable names (``"STRIPE_KEY"``).
    """

    type: str
    env: Mapping[str, str]
    options: Mapping[str, Any] = field(default_factory=dict)

    def env_status(self) -> dict[str, bool]:
        """Each environment variable this auth reads, and whether it is set (non-empty) now."""
        return {name: bool(os.environ.get(name, "").strip()) for name in self.env.values()}

    def build(self) -> AuthBase:
        """The auth object, with secrets read from the environment now."""
        from ..auth import keys as auth

        env, opts = self.env, dict(self.options)
        if self.type == "api_key":
            return auth.APIKeyAuth.from_env(env["key_env"], opts.get("header"), query=opts.get("query"))
        if self.type == "bearer":
            return auth.BearerAuth.from_env(env["token_env"])
        if self.type == "basic":
            username = opts.pop("username", None) or auth.env_secret(env["username_env"])
            return auth.BasicAuth(username, auth.env_secret(env["password_env"]))
        from ..auth import oauth2

        token_url = opts.pop("token_url")
        client_id = opts.pop("client_id", None) or auth.env_secret(env["client_id_env"])
        if self.type == "oauth2_client_credentials":
            secret = auth.env_secret(env["client_secret_env"])
            return oauth2.OAuth2ClientCredentials(token_url, client_id, secret, **opts)
        secret_var = env.get("client_secret_env")
        return oauth2.OAuth2RefreshToken(
            token_url,
            client_id,
            auth.env_secret(secret_var) if secret_var else None,
            refresh_token=auth.env_secret(env["refresh_token_env"]),
            **opts,
        )

    def describe(self) -> str:
        """One line, no secret: the type, where the credential goes, and each variable's name and state."""
        from .describe import describe_auth

        return describe_auth(self)


@dataclass(frozen=True)
class IntegrationConfig:
    """One validated ``[integrations.NAME]`` table."""

    name: str
    base_url: str
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    deadline: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: CircuitBreaker | None = field(default_factory=CircuitBreaker)
    budget: RetryBudget | None = field(default_factory=RetryBudget)
    bulkhead: Bulkhead | None = None
    #: The checked ``degrade`` table (built into a policy with its store by :meth:`session_kwargs`).
    degrade: Mapping[str, Any] | None = None
    rate_limit: RateLimit | None = None
    store: Mapping[str, Any] | None = None
    auth: AuthConfig | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Origins besides ``base_url``'s that the auth may be sent to (normalized ``scheme://host:port``).
    allowed_origins: tuple[str, ...] = ()
    request_id_header: str | None = DEFAULT_REQUEST_ID_HEADER
    raise_for_status: bool = False
    drift: str = "raise"
    description: str | None = None

    def env_vars(self) -> dict[str, str]:
        """Location (``integrations.x.auth.token_env``) of each environment variable read, to its name."""
        prefix = f"integrations.{self.name}"
        found = {f"{prefix}.auth.{key}": name for key, name in (self.auth.env.items() if self.auth else ())}
        if self.store and "url_env" in self.store:
            found[f"{prefix}.store.url_env"] = self.store["url_env"]
        degrade_store = (self.degrade or {}).get("store") or {}
        if "url_env" in degrade_store:
            found[f"{prefix}.degrade.store.url_env"] = degrade_store["url_env"]
        return found

    def session_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~resilient_session.ResilientSession` for this integration.

        Secrets are read from the environment now; ``headers`` and ``allowed_origins`` are not among them
        (set them on the session once built), and a configured store is already bound to the breaker and
        the budget.
        """
        store = self._store()
        breaker, budget = self.breaker, self.budget
        if store is not None:
            breaker = breaker.new(store=store) if breaker is not None else None
            budget = budget.new(store=store) if budget is not None else None
        rate_limit = self.rate_limit
        if rate_limit is not None:
            # Named after the integration: every session of it shares one schedule, whatever origin.
            rate_limit = rate_limit.new(
                name=rate_limit.name or self.name, **({"store": store} if store else {})
            )
        return {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "retry": self.retry,
            "deadline": self.deadline,
            "auth": self.auth.build() if self.auth is not None else None,
            "raise_for_status": self.raise_for_status,
            "breaker": breaker or False,
            "budget": budget or False,
            "bulkhead": self.bulkhead or False,
            "rate_limit": rate_limit or False,
            "integration": self.name,
            "request_id_header": self.request_id_header,
            "drift": self.drift,
            "degrade": self._degrade(),
        }

    def _degrade(self) -> Any:
        if self.degrade is None:
            return None
        from .degrade import build

        return build(self.degrade)

    def _store(self) -> StateStore | None:
        if not self.store:
            return None
        options = dict(self.store)
        kind = options.pop("type", "memory")
        if kind == "memory":
            return MemoryStore(**({"ttl": options["ttl"]} if "ttl" in options else {}))
        from ..auth.keys import env_secret
        from ..stores.redis import RedisStore

        url = env_secret(options.pop("url_env"))
        return RedisStore(url, **options)

    def describe(self) -> dict[str, str]:
        """The effective policy, one line per aspect, for ``resilient-session check`` (no secret values)."""
        from .describe import describe

        return describe(self)

    def policy(self) -> dict[str, Any]:
        """The effective policy as JSON-ready values, for ``resilient-session check --json``: the keys of
        :meth:`describe`, with numbers as numbers, ``None`` for what is off, and for each environment
        variable named its name and whether it is set (never its value)."""
        from .describe import policy

        return policy(self)
