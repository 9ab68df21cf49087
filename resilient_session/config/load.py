"""Integrations as configuration: one TOML table per upstream API, validated into settings.

::

    [integrations.stripe]
    base_url = "https://api.stripe.com/v1"
    timeout = { connect = 3.05, read = 20 }
    deadline = 30
    retry = { total = 4, backoff_factor = 0.5 }
    breaker = { consecutive_failures = 5, open_wait = 10 }
    auth = { type = "bearer", token_env = "STRIPE_KEY" }

The whole schema is documented in ``docs/configuration.md``. Validation collects every problem, each
with its location, into one :class:`~resilient_session.InvalidConfigError`; unknown keys are errors.
Credentials are never written in the file: an auth table names environment variables (``token_env``),
read when a session is built. Nothing here builds a session: :meth:`IntegrationConfig.session_kwargs`
gives a session's constructor arguments (:mod:`resilient_session.config.sessions` builds them).
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from requests.auth import AuthBase

from .._redact import is_secret_name, looks_like_env_name, redact_text, redact_url, shown_env_name
from ..adapter import DEFAULT_TIMEOUT
from ..errors import ConfigurationError, InvalidConfigError
from ..observe.events import DEFAULT_REQUEST_ID_HEADER
from ..policies.breaker import CircuitBreaker
from ..policies.budget import RetryBudget
from ..policies.bulkhead import Bulkhead
from ..retry import RetryPolicy
from ..stores.base import MemoryStore, StateStore

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["AuthConfig", "IntegrationConfig", "integration", "load_config", "load_ready"]

Source = str | os.PathLike[str] | Mapping[str, Any]

AUTH_TYPES = ("api_key", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh_token")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Keys under which people write the secret itself; each has an ``<key>_env`` twin or a hint.
_LITERAL_SECRETS = {
    "key": "key_env",
    "api_key": "key_env",
    "token": "token_env",
    "access_token": "token_env",
    "password": "password_env",
    "secret": "client_secret_env",
    "client_secret": "client_secret_env",
    "refresh_token": "refresh_token_env",
}


# -- the result ---------------------------------------------------------------------------------------


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
        where = ""
        if self.type == "api_key":
            query = self.options.get("query")
            where = (
                f" in query {query!r}" if query else f" in header {self.options.get('header', 'X-API-Key')!r}"
            )
        elif "token_url" in self.options:
            where = f" from {redact_url(self.options['token_url'])}"
        variables = ", ".join(
            f"{_dollar(name)} ({'set' if ok else 'NOT SET'})" for name, ok in self.env_status().items()
        )
        return f"{self.type}{where}; {variables}"


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
    store: Mapping[str, Any] | None = None
    auth: AuthConfig | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    request_id_header: str | None = DEFAULT_REQUEST_ID_HEADER
    raise_for_status: bool = False
    description: str | None = None

    def env_vars(self) -> dict[str, str]:
        """Location (``integrations.x.auth.token_env``) of each environment variable read, to its name."""
        prefix = f"integrations.{self.name}"
        found = {f"{prefix}.auth.{key}": name for key, name in (self.auth.env.items() if self.auth else ())}
        if self.store and "url_env" in self.store:
            found[f"{prefix}.store.url_env"] = self.store["url_env"]
        return found

    def session_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~resilient_session.ResilientSession` for this integration.

        Secrets are read from the environment now; ``headers`` are not among them (set them on the
        session once built), and a configured store is already bound to the breaker and the budget.
        """
        store = self._store()
        breaker, budget = self.breaker, self.budget
        if store is not None:
            breaker = breaker.new(store=store) if breaker is not None else None
            budget = budget.new(store=store) if budget is not None else None
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
            "integration": self.name,
            "request_id_header": self.request_id_header,
        }

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
        retry = self.retry
        connect, read = self.timeout
        lines = {
            "base_url": redact_url(self.base_url),
            "timeout": f"connect {connect:g} s, read {read:g} s",
            "deadline": f"{self.deadline:g} s" if self.deadline is not None else "none",
            "retry": _describe_retry(retry),
            "breaker": _describe_fields(self.breaker, ("name", "store", "listeners", "failure_exceptions")),
            "budget": _describe_fields(self.budget, ("name", "store")),
            "bulkhead": (
                f"max_concurrent={self.bulkhead.max_concurrent}, max_wait={self.bulkhead.max_wait:g}"
                if self.bulkhead is not None
                else "off"
            ),
            "store": _describe_store(self.store),
            "auth": self.auth.describe() if self.auth is not None else "none",
            "headers": ", ".join(f"{k}: {v}" for k, v in self.headers.items()) or "none",
            "request_id_header": self.request_id_header or "none",
            "raise_for_status": str(self.raise_for_status).lower(),
        }
        return lines

    def policy(self) -> dict[str, Any]:
        """The effective policy as JSON-ready values, for ``resilient-session check --json``: the keys of
        :meth:`describe`, with numbers as numbers, ``None`` for what is off, and for each environment
        variable named its name and whether it is set (never its value)."""
        connect, read = self.timeout
        retry = self.retry
        auth = self.auth
        return {
            "base_url": self.base_url,
            "timeout": {"connect": connect, "read": read},
            "deadline": self.deadline,
            "retry": {
                "total": retry.total,
                "backoff_factor": retry.backoff_factor,
                "backoff_max": retry.backoff_max,
                "full_jitter": retry.full_jitter,
                "status_forcelist": _sorted_or_none(retry.status_forcelist),
                "allowed_methods": _sorted_or_none(retry.allowed_methods),  # None: every method
                "respect_retry_after_header": retry.respect_retry_after_header,
                "raise_on_status": retry.raise_on_status,
                "idempotency_key_header": retry.idempotency_key_header,
                "idempotency_key_methods": sorted(retry.idempotency_key_methods),
                "retry_read_timeouts": retry.retry_read_timeouts,
            },
            "breaker": _policy_fields(self.breaker, ("store", "listeners", "failure_exceptions")),
            "budget": _policy_fields(self.budget, ("store",)),
            "bulkhead": None
            if self.bulkhead is None
            else {
                "max_concurrent": self.bulkhead.max_concurrent,
                "max_wait": self.bulkhead.max_wait,
                "name": self.bulkhead.name,
            },
            "store": _policy_store(self.store),
            "auth": None
            if auth is None
            else {
                "type": auth.type,
                **{k: v for k, v in auth.options.items() if k in ("header", "query", "token_url")},
                "env": auth.env_status(),
            },
            "headers": dict(self.headers),
            "request_id_header": self.request_id_header,
            "raise_for_status": self.raise_for_status,
        }


def _sorted_or_none(values: Any) -> list[Any] | None:
    return None if values is None else sorted(values)


def _policy_fields(policy: Any, skip: tuple[str, ...]) -> dict[str, Any] | None:
    if policy is None:
        return None
    import dataclasses

    fields: dict[str, Any] = {}
    for f in dataclasses.fields(policy):
        if f.init and f.name not in skip:
            value = getattr(policy, f.name)
            fields[f.name] = sorted(value) if isinstance(value, (frozenset, set, tuple)) else value
    return fields


def _policy_store(store: Mapping[str, Any] | None) -> dict[str, Any]:
    if not store or store.get("type", "memory") == "memory":
        return {"type": "memory", **({"ttl": store["ttl"]} if store and "ttl" in store else {})}
    name = store["url_env"]
    options = {k: v for k, v in store.items() if k not in ("type", "url_env")}
    return {"type": "redis", **options, "env": {name: bool(os.environ.get(name, "").strip())}}


def _describe_retry(retry: RetryPolicy) -> str:
    statuses = " ".join(str(s) for s in sorted(retry.status_forcelist or ()))
    jitter = "full jitter" if retry.full_jitter else "no jitter"
    return (
        f"total={retry.total}, backoff_factor={retry.backoff_factor:g} "
        f"({jitter}, cap {retry.backoff_max:g} s), "
        f"statuses [{statuses}], raise_on_status={str(retry.raise_on_status).lower()}"
    )


def _describe_fields(policy: Any, skip: tuple[str, ...]) -> str:
    if policy is None:
        return "off"
    import dataclasses

    parts = []
    for f in dataclasses.fields(policy):
        if not f.init or f.name in skip:
            continue
        value = getattr(policy, f.name)
        if isinstance(value, frozenset) and value:
            low, high = min(value), max(value)
            contiguous = len(value) == high - low + 1
            value = f"{low}-{high}" if contiguous and len(value) > 2 else sorted(value)
        parts.append(f"{f.name}={value}")
    name = getattr(policy, "name", None)
    return ", ".join(parts) + (f", name={name!r}" if name else "")


def _describe_store(store: Mapping[str, Any] | None) -> str:
    if not store or store.get("type", "memory") == "memory":
        return "memory (this process)"
    name = store["url_env"]
    state = "set" if os.environ.get(name, "").strip() else "NOT SET"
    return f"redis; URL from {_dollar(name)} ({state})"


def _dollar(name: str) -> str:
    """``$NAME`` for a variable name, or the hidden marker for what looks like a pasted secret."""
    return f"${name}" if looks_like_env_name(name) else shown_env_name(name)


# -- loading ------------------------------------------------------------------------------------------


def load_config(source: Source) -> dict[str, IntegrationConfig]:
    """Read and validate an integrations file (a path, or the already-parsed mapping).

    :raises InvalidConfigError: listing every problem found.
    """
    data, where = _read(source)
    checker = _Checker()
    integrations = checker.document(data)
    if checker.problems:
        raise _invalid(where, checker.problems, checker.secrets)
    return integrations


def load_ready(source: Source) -> dict[str, IntegrationConfig]:
    """As :func:`load_config`, and every environment variable the integrations read is set.

    :raises InvalidConfigError: the file is invalid, or variables it names are unset (all are listed).
    """
    configs = load_config(source)
    _require_env(configs.values(), _where(source))
    return configs


def integration(source: Source, name: str | None = None) -> IntegrationConfig:
    """Integration *name* of *source*, validated, its environment variables set; without a name the
    file must hold exactly one integration."""
    configs = load_config(source)
    if name is None:
        if len(configs) != 1:
            raise ConfigurationError(
                f"{_where(source)} defines {len(configs)} integrations ({', '.join(sorted(configs))}); "
                "pass name=, or use load_integrations() for all of them"
            )
        (config,) = configs.values()
    elif name in configs:
        config = configs[name]
    else:
        known = ", ".join(sorted(configs)) or "none"
        raise ConfigurationError(f"no integration {name!r} in {_where(source)} (defined: {known})")
    _require_env([config], _where(source))
    return config


#: Files larger than this are refused unread (an integrations file is a few kilobytes).
MAX_CONFIG_SIZE = 1024 * 1024


def _read(source: Source) -> tuple[Mapping[str, Any], str]:
    if isinstance(source, Mapping):
        return source, "<mapping>"
    path = Path(source)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_SIZE + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    problem = None
    data: Mapping[str, Any] = {}
    if len(raw) > MAX_CONFIG_SIZE:
        problem = f"the file is over {MAX_CONFIG_SIZE} bytes; an integrations file is a few kilobytes"
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        problem = "the file is UTF-16 text; TOML files must be UTF-8"
    else:
        try:
            text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = (
                f"the file is not UTF-8 text (TOML files must be UTF-8): invalid byte at offset {exc.start}"
            )
        else:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                problem = f"invalid TOML: {exc}"
            except RecursionError:
                problem = "invalid TOML: arrays or inline tables are nested too deeply"
    # Raised here, outside any except block: no parser exception (holding the text) stays attached.
    if problem is not None:
        raise _invalid(str(path), [problem])
    return data, str(path)


def _where(source: Source) -> str:
    return "<mapping>" if isinstance(source, Mapping) else str(source)


def _invalid(where: str, problems: list[str], secrets: Iterable[str] = ()) -> InvalidConfigError:
    # Every problem goes through the scrubber with every secret the document was seen to hold, so no
    # message, however it quotes the file, prints one back in any encoding.
    secrets = tuple(secrets)
    problems = [redact_text(p, secrets) for p in problems]
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    listing = "\n".join(f"  - {p}" for p in problems)
    return InvalidConfigError(f"{count} in {where}:\n{listing}", problems=tuple(problems))


def _require_env(configs: Any, where: str) -> None:
    missing = []
    for config in configs:
        for location, name in config.env_vars().items():
            if not os.environ.get(name, "").strip():
                missing.append(f"{location}: environment variable {shown_env_name(name)} is not set")
    if missing:
        raise _invalid(where, missing)


# -- validation ---------------------------------------------------------------------------------------

Check = Callable[[Any], str | None]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _integer(minimum: int = 0) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {_show(value)}"
        return f"must be >= {minimum}, got {value}" if value < minimum else None

    return check


def _number(minimum: float = 0.0, *, exclusive: bool = False, maximum: float | None = None) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"expected a number, got {_show(value)}"
        if value < minimum or (exclusive and value == minimum):
            return f"must be {'>' if exclusive else '>='} {minimum:g}, got {value:g}"
        if maximum is not None and value > maximum:
            return f"must be <= {maximum:g}, got {value:g}"
        return None

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {_show(value)}"


def _string(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a string, got {_show(value)}"
    return "must not be empty" if not value.strip() else None


def _header_name(value: Any) -> str | None:
    problem = _string(value)
    if problem is None and not _HEADER_NAME.match(value):
        return f"{_show(value)} is not a valid header name"
    return problem


def _env_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected the name of an environment variable, got {_show(value)}"
    if not value.strip():
        return "must not be empty"
    if not _ENV_NAME.match(value):
        # Not echoed: what does not look like a name is often the secret itself, pasted in.
        return "is not an environment variable name (letters, digits, _); the value is not shown"
    return None


def _token_params(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"expected a table, got {_show(value)}"
    for key, item in value.items():
        if is_secret_name(key) or key in _LITERAL_SECRETS:
            return (
                f"{key}: secret values must not be written in the file; the client secret comes from "
                'client_secret_env = "MY_SECRET"'
            )
        if not isinstance(item, str):
            return f"{key}: expected a string, got {_show(item)}"
    return None


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return f"expected one of {', '.join(_show(c) for c in choices)}; got {_show(value)}"

    return check


def _or_false(inner: Check) -> Check:
    def check(value: Any) -> str | None:
        return None if value is False else inner(value)

    return check


def _list_of(item: Check, *, what: str) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"expected an array of {what}, got {_show(value)}"
        for index, element in enumerate(value):
            problem = item(element)
            if problem is not None:
                return f"[{index}] {problem}"
        return None

    return check


def _status(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        return f"expected an HTTP status (100-599), got {_show(value)}"
    return None


def _method(value: Any) -> str | None:
    problem = _string(value)
    if problem is None and not value.isalpha():
        return f"{_show(value)} is not an HTTP method"
    return problem


def _scope(value: Any) -> str | None:
    if isinstance(value, str):
        return None
    return _list_of(_string, what="strings")(value)


def _url_without_credentials(value: Any) -> str | None:
    problem = _string(value)
    if problem is not None:
        return problem
    try:
        parts = urlsplit(value)
    except ValueError:
        return "not a valid URL"
    if parts.password is not None or any(is_secret_name(k) for k, _ in parse_qsl(parts.query)):
        return "must not contain a credential (password or secret query parameter)"
    return None


def _url_secrets(url: Any) -> list[str]:
    """The credentials a URL written in the file carries: userinfo password, secret-named query (and
    fragment) values, each raw and percent-decoded."""
    if not isinstance(url, str):
        return []
    found: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is not None:
        if parts.password:
            found += [parts.password, unquote(parts.password)]
            found += [f"{parts.username or ''}:{parts.password}"]
        for query in (parts.query, parts.fragment):
            found += [v for k, v in parse_qsl(query) if is_secret_name(k) and v]
    # What urlsplit misses (a mangled netloc): anything between "://" and the last "@" before the path.
    head = url.partition("://")[2].split("/", 1)[0]
    if "@" in head:
        userinfo = head.rpartition("@")[0]
        found += [userinfo, userinfo.partition(":")[2]]
    return found


def _timeout_check(value: Any) -> str | None:
    return _number(0.0, exclusive=True)(value)


_RETRY: dict[str, Check] = {
    "total": _integer(),
    "connect": _integer(),
    "read": _integer(),
    "status": _integer(),
    "other": _integer(),
    "redirect": _integer(),
    "backoff_factor": _number(),
    "backoff_max": _number(),
    "full_jitter": _boolean,
    "status_forcelist": _list_of(_status, what="HTTP statuses"),
    "allowed_methods": _list_of(_method, what="HTTP methods"),
    "respect_retry_after_header": _boolean,
    "raise_on_status": _boolean,
    "idempotency_key_header": _header_name,
    "idempotency_key_methods": _list_of(_method, what="HTTP methods"),
    "retry_read_timeouts": _boolean,
}
_BREAKER: dict[str, Check] = {
    "failure_rate_threshold": _or_false(_number(0.0, exclusive=True, maximum=1.0)),
    "window_size": _integer(1),
    "minimum_calls": _integer(1),
    "consecutive_failures": _or_false(_integer(1)),
    "open_wait": _number(0.0, exclusive=True),
    "wait_multiplier": _number(1.0),
    "max_open_wait": _number(0.0, exclusive=True),
    "probes": _integer(1),
    "probe_lease": _number(0.0, exclusive=True),
    "failure_statuses": _list_of(_status, what="HTTP statuses"),
    "name": _string,
}
_BUDGET: dict[str, Check] = {
    "capacity": _number(0.0, exclusive=True),
    "retry_cost": _number(),
    "timeout_retry_cost": _number(),
    "success_refund": _number(),
    "name": _string,
}
_BULKHEAD: dict[str, Check] = {
    "max_concurrent": _integer(1),
    "max_wait": _number(),
    "name": _string,
}
_STORE: dict[str, Check] = {
    "type": _one_of("memory", "redis"),
    "url_env": _env_name,
    "prefix": _string,
    "ttl": _number(0.0, exclusive=True),
}
_TIMEOUT: dict[str, Check] = {"connect": _timeout_check, "read": _timeout_check}

# Per auth type: (required, optional) options. ``*_env`` options name environment variables.
_OAUTH_COMMON: dict[str, Check] = {
    "scope": _scope,
    "leeway": _number(),
    "timeout": _timeout_check,
}
_AUTH: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "api_key": ({"key_env": _env_name}, {"header": _header_name, "query": _string}),
    "bearer": ({"token_env": _env_name}, {}),
    "basic": ({"password_env": _env_name}, {"username_env": _env_name, "username": _string}),
    "oauth2_client_credentials": (
        {"token_url": _url_without_credentials, "client_secret_env": _env_name},
        {
            "client_id_env": _env_name,
            "client_id": _string,
            "client_auth": _one_of("basic", "body"),
            "token_params": _token_params,
            **_OAUTH_COMMON,
        },
    ),
    "oauth2_refresh_token": (
        {"token_url": _url_without_credentials, "refresh_token_env": _env_name},
        {"client_id_env": _env_name, "client_id": _string, "client_secret_env": _env_name, **_OAUTH_COMMON},
    ),
}
# Either the literal (not secret) or the variable, exactly one.
_EITHER = {"basic": ("username", "username_env"), "oauth2_client_credentials": ("client_id", "client_id_env")}
_EITHER["oauth2_refresh_token"] = _EITHER["oauth2_client_credentials"]

_INTEGRATION_KEYS = (
    "base_url",
    "description",
    "timeout",
    "deadline",
    "retry",
    "breaker",
    "budget",
    "bulkhead",
    "store",
    "auth",
    "headers",
    "request_id_header",
    "raise_for_status",
)


class _Checker:
    """Walks a parsed document, building configs and collecting every problem with its location."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        # Secrets seen in the document (literal secrets, URL credentials, values where a variable name
        # belongs): every problem is scrubbed of them before it is reported.
        self.secrets: set[str] = set()

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}")

    def check(self, where: str, value: Any, check: Check) -> bool:
        problem = check(value)
        if problem is not None:
            self.problem(where, problem)
        return problem is None

    def table(self, where: str, value: Any, schema: Mapping[str, Check]) -> dict[str, Any] | None:
        """The valid keys of table *value* (None if it is not a table); every bad key is a problem."""
        if not isinstance(value, Mapping):
            self.problem(where, f"expected a table, got {_show(value)}")
            return None
        valid = {}
        for key, item in value.items():
            if key not in schema:
                self.unknown(where, key, schema)
            elif self.check(f"{where}.{key}", item, schema[key]):
                valid[key] = item
        return valid

    def unknown(self, where: str, key: str, known: Any) -> None:
        self.problem(f"{where}.{key}", f"unknown key (expected one of: {', '.join(sorted(known))})")

    # -- document ---------------------------------------------------------------------------------

    def document(self, data: Mapping[str, Any]) -> dict[str, IntegrationConfig]:
        for key in data:
            if key != "integrations":
                self.problem(key, "unknown key (expected: integrations)")
        integrations = data.get("integrations")
        if integrations is None:
            self.problem("integrations", "missing: define at least one [integrations.NAME] table")
            return {}
        if not isinstance(integrations, Mapping) or not integrations:
            self.problem("integrations", "expected at least one [integrations.NAME] table")
            return {}
        found = {}
        for name, table in integrations.items():
            config = self.integration(name, table)
            if config is not None:
                found[name] = config
        return found

    def integration(self, name: str, table: Any) -> IntegrationConfig | None:
        where = f"integrations.{name}"
        if not re.match(r"^[A-Za-z0-9_\-]+$", name):
            self.problem(where, "integration names may contain letters, digits, '_' and '-' only")
        if not isinstance(table, Mapping):
            self.problem(where, f"expected a table, got {_show(table)}")
            return None
        before = len(self.problems)
        for key in table:
            if key not in _INTEGRATION_KEYS:
                self.unknown(where, key, _INTEGRATION_KEYS)
        kwargs: dict[str, Any] = {"name": name}
        base_url = table.get("base_url")
        self.secrets.update(_url_secrets(base_url))
        if base_url is None:
            self.problem(f"{where}.base_url", 'missing (e.g. base_url = "https://api.example.com/v1")')
        elif self.check(f"{where}.base_url", base_url, _string):
            self.base_url(f"{where}.base_url", base_url)
            kwargs["base_url"] = base_url
        if "description" in table and self.check(f"{where}.description", table["description"], _string):
            kwargs["description"] = table["description"]
        if "timeout" in table:
            kwargs["timeout"] = self.timeout(f"{where}.timeout", table["timeout"])
        if "deadline" in table:
            deadline = table["deadline"]
            if self.check(f"{where}.deadline", deadline, _or_false(_number(0.0, exclusive=True))):
                kwargs["deadline"] = deadline or None
        if "retry" in table:
            kwargs["retry"] = self.retry(f"{where}.retry", table["retry"])
        for key, schema, build in (
            ("breaker", _BREAKER, _breaker),
            ("budget", _BUDGET, _budget),
            ("bulkhead", _BULKHEAD, _bulkhead),
        ):
            if key in table:
                kwargs[key] = self.policy(f"{where}.{key}", table[key], schema, build)
        if "store" in table:
            kwargs["store"] = self.store(f"{where}.store", table["store"])
        if "auth" in table:
            kwargs["auth"] = self.auth(f"{where}.auth", table["auth"])
        if "headers" in table:
            kwargs["headers"] = self.headers(f"{where}.headers", table["headers"])
        if "request_id_header" in table:
            value = table["request_id_header"]
            if self.check(f"{where}.request_id_header", value, _or_false(_header_name)):
                kwargs["request_id_header"] = value or None
        if "raise_for_status" in table and self.check(
            f"{where}.raise_for_status", table["raise_for_status"], _boolean
        ):
            kwargs["raise_for_status"] = table["raise_for_status"]
        if len(self.problems) > before:
            return None
        return IntegrationConfig(**kwargs)

    def base_url(self, where: str, url: str) -> None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            self.problem(where, "not a valid URL (bad port or brackets)")
            return
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(
                where, f"expected an http:// or https:// URL with a host, got {_show(redact_url(url))}"
            )
        if parts.password is not None:
            self.problem(where, "must not contain a password; use an [auth] table with environment variables")
        if any(is_secret_name(k) for k, _ in parse_qsl(parts.query)):
            self.problem(
                where, 'must not contain a credential in its query; use auth type "api_key" with query'
            )

    def timeout(self, where: str, value: Any) -> tuple[float, float] | None:
        if isinstance(value, Mapping):
            table = self.table(where, value, _TIMEOUT)
            if table is None:
                return None
            return (
                float(table.get("connect", DEFAULT_TIMEOUT[0])),
                float(table.get("read", DEFAULT_TIMEOUT[1])),
            )
        if self.check(where, value, _timeout_check):
            return (float(value), float(value))
        return None

    def retry(self, where: str, value: Any) -> RetryPolicy | None:
        if value is False:
            return RetryPolicy(0, read=False)
        if isinstance(value, int) and not isinstance(value, bool):
            return RetryPolicy(value) if self.check(where, value, _integer()) else None
        table = self.table(where, value, _RETRY)
        if table is None:
            return None
        for key in ("status_forcelist", "allowed_methods", "idempotency_key_methods"):
            if key in table:
                table[key] = frozenset(m.upper() if isinstance(m, str) else m for m in table[key])
        try:
            return RetryPolicy(**table)
        except (TypeError, ValueError) as exc:
            self.problem(where, str(exc))
            return None

    def policy(self, where: str, value: Any, schema: Mapping[str, Check], build: Callable[..., Any]) -> Any:
        if value is False:
            return None
        if value is True:
            return build()
        table = self.table(where, value, schema)
        if table is None:
            return None
        try:
            return build(**table)
        except (TypeError, ValueError) as exc:
            self.problem(where, str(exc))
            return None

    def store(self, where: str, value: Any) -> dict[str, Any] | None:
        table = self.table(where, value, _STORE)
        if table is None:
            return None
        if table.get("type") == "redis" and "url_env" not in table:
            self.problem(
                f"{where}.url_env", 'required when type = "redis" (the variable holding redis://...)'
            )
        if table.get("type", "memory") == "memory" and ("url_env" in table or "prefix" in table):
            self.problem(where, 'url_env and prefix apply to type = "redis" only')
        return table

    def headers(self, where: str, value: Any) -> dict[str, str]:
        if not isinstance(value, Mapping):
            self.problem(where, f"expected a table of header names to values, got {_show(value)}")
            return {}
        headers = {}
        for name, item in value.items():
            at = f"{where}.{name}"
            if is_secret_name(name) and isinstance(item, str):
                self.secrets.add(item)
            if not _HEADER_NAME.match(name):
                self.problem(at, "not a valid header name")
            elif is_secret_name(name):
                self.problem(
                    at,
                    "credentials must not be written in the file; use an [auth] table naming "
                    'an environment variable (type = "api_key", header = ..., key_env = ...)',
                )
            elif self.check(
                at, item, lambda v: None if isinstance(v, str) else f"expected a string, got {_show(v)}"
            ):
                headers[name] = item
        return headers

    def auth(self, where: str, value: Any) -> AuthConfig | None:
        if not isinstance(value, Mapping):
            self.problem(where, f"expected a table, got {_show(value)}")
            return None
        kind = value.get("type")
        if kind is None:
            self.problem(f"{where}.type", f"missing (one of: {', '.join(AUTH_TYPES)})")
            return None
        if not self.check(f"{where}.type", kind, _one_of(*AUTH_TYPES)):
            return None
        required, optional = _AUTH[kind]
        self.secrets.update(_table_secrets(value))
        before = len(self.problems)
        env: dict[str, str] = {}
        options: dict[str, Any] = {}
        for key, item in value.items():
            at = f"{where}.{key}"
            if key == "type":
                continue
            if key in _LITERAL_SECRETS:
                self.problem(
                    at,
                    "secret values must not be written in the file; name the environment "
                    f'variable holding it instead ({_LITERAL_SECRETS[key]} = "MY_SECRET")',
                )
            elif key not in required and key not in optional:
                self.problem(
                    at,
                    f'unknown key for type = "{kind}" (expected one of: '
                    f"{', '.join(sorted([*required, *optional]))})",
                )
            elif self.check(at, item, {**required, **optional}[key]):
                (env if key.endswith("_env") else options)[key] = item
        for key in required:
            if key not in value:
                self.problem(f"{where}.{key}", f'required for type = "{kind}"')
        either = _EITHER.get(kind)
        if either is not None and (either[0] in value) == (either[1] in value):
            self.problem(where, f"set exactly one of {either[0]} or {either[1]}")
        if kind == "api_key" and "header" in value and "query" in value:
            self.problem(where, "set header or query, not both")
        if len(self.problems) > before:
            return None
        return AuthConfig(kind, env, options)


def _table_secrets(table: Mapping[str, Any]) -> list[str]:
    """Secret values written in an auth table: literal secrets, secret-named ``token_params``, URL
    credentials, and ``*_env`` values that do not look like variable names (secrets pasted in)."""
    found: list[str] = []
    for key, item in table.items():
        if key.endswith("_env"):
            if isinstance(item, str) and not looks_like_env_name(item):
                found.append(item)
        elif key in _LITERAL_SECRETS or is_secret_name(key):
            if isinstance(item, str):
                found.append(item)
        elif key == "token_params" and isinstance(item, Mapping):
            found += [
                v
                for k, v in item.items()
                if isinstance(v, str) and (is_secret_name(k) or k in _LITERAL_SECRETS)
            ]
        elif key == "token_url":
            found += _url_secrets(item)
    return found


def _breaker(**options: Any) -> CircuitBreaker:
    if "failure_statuses" in options:
        options["failure_statuses"] = frozenset(options["failure_statuses"])
    for key in ("failure_rate_threshold", "consecutive_failures"):
        if options.get(key) is False:
            options[key] = None  # TOML has no null: false turns the criterion off
    return CircuitBreaker(**options)


def _budget(**options: Any) -> RetryBudget:
    return RetryBudget(**options)


def _bulkhead(**options: Any) -> Bulkhead:
    return Bulkhead(**options)
