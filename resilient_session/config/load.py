"""Reading an integrations file: one TOML table per upstream API, validated into settings.

::

    [integrations.stripe]
    base_url = "https://api.stripe.com/v1"
    timeout = { connect = 3.05, read = 20 }
    deadline = 30
    retry = { total = 4, backoff_factor = 0.5 }
    breaker = { consecutive_failures = 5, open_wait = 10 }
    auth = { type = "bearer", token_env = "STRIPE_KEY" }

The whole schema is documented in ``docs/configuration.md`` and checked by
:mod:`resilient_session.config.schema`. Validation collects every problem, each with its location, into
one :class:`~resilient_session.InvalidConfigError`; unknown keys are errors. Credentials are never written
in the file: an auth table names environment variables (``token_env``), read when a session is built.
Nothing here builds a session: :meth:`IntegrationConfig.session_kwargs` gives a session's constructor
arguments (:mod:`resilient_session.config.sessions` builds them).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._options import session_option_problem
from .._redact import is_secret_name, redact_text, shown_env_name
from ..adapter import DEFAULT_TIMEOUT
from ..auth.origins import parse_origins
from ..errors import ConfigurationError, InvalidConfigError
from ..retry import RetryPolicy, as_retry_policy
from .model import AuthConfig, IntegrationConfig
from .schema import (
    AUTH,
    AUTH_TYPES,
    EITHER,
    HEADER_NAME,
    INTEGRATION_KEYS,
    LITERAL_SECRETS,
    POLICIES,
    REDIS_ONLY,
    STORE,
    STRING,
    TIMEOUT,
    Check,
    one_of,
    policy_kwargs,
    policy_schema,
    show,
    table_secrets,
    url_secrets,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["MAX_CONFIG_SIZE", "Source", "integration", "load_config", "load_ready"]

Source = str | os.PathLike[str] | Mapping[str, Any]


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
            self.problem(where, f"expected a table, got {show(value)}")
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
            self.problem(where, f"expected a table, got {show(table)}")
            return None
        before = len(self.problems)
        for key in table:
            if key not in INTEGRATION_KEYS:
                self.unknown(where, key, INTEGRATION_KEYS)
        kwargs: dict[str, Any] = {"name": name}
        base_url = table.get("base_url")
        self.secrets.update(url_secrets(base_url))
        if base_url is None:
            self.problem(f"{where}.base_url", 'missing (e.g. base_url = "https://api.example.com/v1")')
        else:
            valid = self.option(f"{where}.base_url", "base_url", base_url)
            if isinstance(base_url, str):
                self.base_url(f"{where}.base_url", base_url)  # a credential is reported on any URL
            if valid:
                kwargs["base_url"] = base_url
        if "description" in table and self.check(f"{where}.description", table["description"], STRING):
            kwargs["description"] = table["description"]
        if "timeout" in table:
            kwargs["timeout"] = self.timeout(f"{where}.timeout", table["timeout"])
        if "deadline" in table:
            deadline = table["deadline"]
            if self.option(f"{where}.deadline", "deadline", deadline):
                kwargs["deadline"] = deadline or None
        if "retry" in table:
            kwargs["retry"] = self.retry(f"{where}.retry", table["retry"])
        for key in ("breaker", "budget", "bulkhead", "rate_limit"):
            if key in table:
                kwargs[key] = self.policy(f"{where}.{key}", table[key], POLICIES[key])
        if "degrade" in table:
            from .degrade import check as check_degrade

            kwargs["degrade"] = check_degrade(f"{where}.degrade", table["degrade"], self.problem)
        if "store" in table:
            kwargs["store"] = self.store(f"{where}.store", table["store"])
        if "auth" in table:
            kwargs["auth"] = self.auth(f"{where}.auth", table["auth"])
        if "allowed_origins" in table:
            kwargs["allowed_origins"] = self.origins(f"{where}.allowed_origins", table["allowed_origins"])
        if "headers" in table:
            kwargs["headers"] = self.headers(f"{where}.headers", table["headers"])
        if "request_id_header" in table:
            value = table["request_id_header"]
            if self.option(f"{where}.request_id_header", "request_id_header", value):
                kwargs["request_id_header"] = value or None
        if "raise_for_status" in table and self.option(
            f"{where}.raise_for_status", "raise_for_status", table["raise_for_status"]
        ):
            kwargs["raise_for_status"] = table["raise_for_status"]
        if "drift" in table and self.option(f"{where}.drift", "drift", table["drift"]):
            kwargs["drift"] = table["drift"]
        if len(self.problems) > before:
            return None
        return IntegrationConfig(**kwargs)

    def option(self, where: str, name: str, value: Any) -> bool:
        """Check a session option as the session's constructor does (the same words), file values."""
        found = session_option_problem(name, value, python=False)
        if found is not None:
            self.problem(where + found[0], found[1])
        return found is None

    def base_url(self, where: str, url: str) -> None:
        """What the file refuses beyond the constructor: credentials written in the URL."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return  # already reported: not a valid URL
        if parts.password is not None:
            self.problem(where, "must not contain a password; use an [auth] table with environment variables")
        if any(is_secret_name(k) for k, _ in parse_qsl(parts.query)):
            self.problem(
                where, 'must not contain a credential in its query; use auth type "api_key" with query'
            )

    def origins(self, where: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.problem(
                where, f'expected an array of origins (["https://files.example.com"]), got {show(value)}'
            )
            return ()
        found: list[str] = []
        for index, item in enumerate(value):
            self.secrets.update(url_secrets(item))
            if not isinstance(item, str):
                self.problem(f"{where}[{index}]", f"expected a URL string, got {show(item)}")
                continue
            try:
                found += parse_origins(item)
            except ValueError as exc:
                self.problem(f"{where}[{index}]", str(exc).removeprefix("allowed_origins: "))
        return tuple(dict.fromkeys(found))

    def timeout(self, where: str, value: Any) -> tuple[float, float] | None:
        if not self.option(where, "timeout", value):
            return None
        if isinstance(value, Mapping):
            table = self.table(where, value, TIMEOUT)
            if table is None:
                return None
            return (
                float(table.get("connect", DEFAULT_TIMEOUT[0])),
                float(table.get("read", DEFAULT_TIMEOUT[1])),
            )
        if isinstance(value, list):
            return (float(value[0]), float(value[1]))
        return (float(value), float(value))

    def retry(self, where: str, value: Any) -> RetryPolicy | None:
        if not self.option(where, "retry", value):
            return None
        if isinstance(value, Mapping):
            return self.build(where, value, RetryPolicy)  # type: ignore[no-any-return]
        return as_retry_policy(value)  # type: ignore[return-value]

    def policy(self, where: str, value: Any, policy: type[Any]) -> Any:
        """A breaker, budget, bulkhead or rate limit table: ``false`` is off (None), ``true`` the defaults."""
        if value is False:
            return None
        if value is True:
            return policy()
        return self.build(where, value, policy)

    def build(self, where: str, value: Any, policy: type[Any]) -> Any:
        """The *policy* a table describes, each key checked by the policy's own option spec; what only
        the constructor can judge (how options relate) is reported from its exception."""
        table = self.table(where, value, policy_schema(policy))
        if table is None:
            return None
        try:
            return policy(**policy_kwargs(policy, table))
        except (TypeError, ValueError) as exc:
            self.problem(where, str(exc))
            return None

    def store(self, where: str, value: Any) -> dict[str, Any] | None:
        table = self.table(where, value, STORE)
        if table is None:
            return None
        if table.get("type") == "redis" and "url_env" not in table:
            self.problem(
                f"{where}.url_env", 'required when type = "redis" (the variable holding redis://...)'
            )
        if table.get("type", "memory") == "memory":
            for key in REDIS_ONLY:
                if key in table:
                    self.problem(f"{where}.{key}", 'applies to type = "redis" only')
        return table

    def headers(self, where: str, value: Any) -> dict[str, str]:
        if not isinstance(value, Mapping):
            self.problem(where, f"expected a table of header names to values, got {show(value)}")
            return {}
        headers = {}
        for name, item in value.items():
            at = f"{where}.{name}"
            if is_secret_name(name) and isinstance(item, str):
                self.secrets.add(item)
            if HEADER_NAME(name) is not None:
                self.problem(at, "not a valid header name")
            elif is_secret_name(name):
                self.problem(
                    at,
                    "credentials must not be written in the file; use an [auth] table naming "
                    'an environment variable (type = "api_key", header = ..., key_env = ...)',
                )
            elif self.check(
                at, item, lambda v: None if isinstance(v, str) else f"expected a string, got {show(v)}"
            ):
                headers[name] = item
        return headers

    def auth(self, where: str, value: Any) -> AuthConfig | None:
        if not isinstance(value, Mapping):
            self.problem(where, f"expected a table, got {show(value)}")
            return None
        kind = value.get("type")
        if kind is None:
            self.problem(f"{where}.type", f"missing (one of: {', '.join(AUTH_TYPES)})")
            return None
        if not self.check(f"{where}.type", kind, one_of(*AUTH_TYPES)):
            return None
        required, optional = AUTH[kind]
        self.secrets.update(table_secrets(value))
        before = len(self.problems)
        env: dict[str, str] = {}
        options: dict[str, Any] = {}
        for key, item in value.items():
            at = f"{where}.{key}"
            if key == "type":
                continue
            if key in LITERAL_SECRETS:
                self.problem(
                    at,
                    "secret values must not be written in the file; name the environment "
                    f'variable holding it instead ({LITERAL_SECRETS[key]} = "MY_SECRET")',
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
        either = EITHER.get(kind)
        if either is not None and (either[0] in value) == (either[1] in value):
            self.problem(where, f"set exactly one of {either[0]} or {either[1]}")
        if kind == "api_key" and "header" in value and "query" in value:
            self.problem(where, "set header or query, not both")
        if len(self.problems) > before:
            return None
        return AuthConfig(kind, env, options)
