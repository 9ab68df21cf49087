"""The integrations file's schema: the keys each table takes and what each key accepts.

The ``retry``, ``breaker``, ``budget``, ``bulkhead`` and ``rate_limit`` tables are built from the
policies' own option specs (their ``OPTIONS``, see :mod:`resilient_session._options`): a key, its type
and its bounds are written once, in the policy, and the constructor checks what the file checks. The
rest (timeouts, the store, auth) is described here. Each check returns what is wrong with a value, or
``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .._options import Option, show
from .._redact import is_secret_name, looks_like_env_name
from ..policies.breaker import CircuitBreaker
from ..policies.budget import RetryBudget
from ..policies.bulkhead import Bulkhead
from ..policies.ratelimit import RateLimit
from ..policies.routes import routes_problem
from ..retry import RetryPolicy

__all__ = [
    "AUTH",
    "AUTH_TYPES",
    "BOOLEAN",
    "EITHER",
    "HEADER_NAME",
    "INTEGRATION_KEYS",
    "LITERAL_SECRETS",
    "OFF_OR_HEADER_NAME",
    "OFF_OR_POSITIVE",
    "POLICIES",
    "POSITIVE",
    "REDIS_ONLY",
    "STORE",
    "STRING",
    "TIMEOUT",
    "Check",
    "env_name",
    "one_of",
    "policy_kwargs",
    "policy_schema",
    "show",
    "table_secrets",
    "url_secrets",
]

Check = Callable[[Any], "str | None"]


AUTH_TYPES = ("api_key", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh_token")

#: The policy tables of an integration, and the policy each one builds.
POLICIES: dict[str, type[Any]] = {
    "retry": RetryPolicy,
    "breaker": CircuitBreaker,
    "budget": RetryBudget,
    "bulkhead": Bulkhead,
    "rate_limit": RateLimit,
}


#: Keys of a policy table that are not plain-data options: checked by their own module, passed as read.
TABLE_OPTIONS: dict[type[Any], dict[str, Check]] = {CircuitBreaker: {"routes": routes_problem}}


def policy_schema(policy: type[Any]) -> dict[str, Check]:
    """The keys of *policy*'s table, each checked by the policy's own option spec."""
    own = {name: option.file_problem for name, option in policy.OPTIONS.items()}
    return {**own, **TABLE_OPTIONS.get(policy, {})}


def policy_kwargs(policy: type[Any], table: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments for a checked table of *policy* (arrays become sets, ``false`` None)."""
    return {
        name: policy.OPTIONS[name].from_file(value) if name in policy.OPTIONS else value
        for name, value in table.items()
    }


BOOLEAN = Option("boolean").file_problem
STRING = Option("string").file_problem
HEADER_NAME = Option("header").file_problem
POSITIVE = Option("number", exclusive=True).file_problem
OFF_OR_POSITIVE = Option("number", exclusive=True, false_is_none=True).file_problem
OFF_OR_HEADER_NAME = Option("header", false_is_none=True).file_problem

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Keys under which people write the secret itself; each has an ``<key>_env`` twin or a hint.
LITERAL_SECRETS = {
    "key": "key_env",
    "api_key": "key_env",
    "token": "token_env",
    "access_token": "token_env",
    "password": "password_env",
    "secret": "client_secret_env",
    "client_secret": "client_secret_env",
    "refresh_token": "refresh_token_env",
}


def env_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected the name of an environment variable, got {show(value)}"
    if not value.strip():
        return "must not be empty"
    if not _ENV_NAME.match(value):
        # Not echoed: what does not look like a name is often the secret itself, pasted in.
        return "is not an environment variable name (letters, digits, _); the value is not shown"
    return None


def _token_params(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"expected a table, got {show(value)}"
    for key, item in value.items():
        if is_secret_name(key) or key in LITERAL_SECRETS:
            return (
                f"{key}: secret values must not be written in the file; the client secret comes from "
                'client_secret_env = "MY_SECRET"'
            )
        if not isinstance(item, str):
            return f"{key}: expected a STRING, got {show(item)}"
    return None


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return f"expected one of {', '.join(show(c) for c in choices)}; got {show(value)}"

    return check


def _list_of(item: Check, *, what: str) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"expected an array of {what}, got {show(value)}"
        for index, element in enumerate(value):
            problem = item(element)
            if problem is not None:
                return f"[{index}] {problem}"
        return None

    return check


def _scope(value: Any) -> str | None:
    if isinstance(value, str):
        return None
    return _list_of(STRING, what="strings")(value)


def _url_without_credentials(value: Any) -> str | None:
    problem = STRING(value)
    if problem is not None:
        return problem
    try:
        parts = urlsplit(value)
    except ValueError:
        return "not a valid URL"
    if parts.password is not None or any(is_secret_name(k) for k, _ in parse_qsl(parts.query)):
        return "must not contain a credential (password or secret query parameter)"
    return None


def url_secrets(url: Any) -> list[str]:
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


STORE: dict[str, Check] = {
    "type": one_of("memory", "redis"),
    "url_env": env_name,
    "prefix": STRING,
    "ttl": POSITIVE,
    "op_timeout": POSITIVE,
}
#: Store options that only a Redis store takes.
REDIS_ONLY = ("url_env", "prefix", "op_timeout")
TIMEOUT: dict[str, Check] = {"connect": POSITIVE, "read": POSITIVE}

# Per auth type: (required, optional) options. ``*_env`` options name environment variables.
_OAUTH_COMMON: dict[str, Check] = {
    "scope": _scope,
    "leeway": Option("number").file_problem,
    "timeout": POSITIVE,
}
AUTH: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "api_key": ({"key_env": env_name}, {"header": HEADER_NAME, "query": STRING}),
    "bearer": ({"token_env": env_name}, {}),
    "basic": ({"password_env": env_name}, {"username_env": env_name, "username": STRING}),
    "oauth2_client_credentials": (
        {"token_url": _url_without_credentials, "client_secret_env": env_name},
        {
            "client_id_env": env_name,
            "client_id": STRING,
            "client_auth": one_of("basic", "body"),
            "token_params": _token_params,
            **_OAUTH_COMMON,
        },
    ),
    "oauth2_refresh_token": (
        {"token_url": _url_without_credentials, "refresh_token_env": env_name},
        {"client_id_env": env_name, "client_id": STRING, "client_secret_env": env_name, **_OAUTH_COMMON},
    ),
}
# Either the literal (not secret) or the variable, exactly one.
EITHER = {"basic": ("username", "username_env"), "oauth2_client_credentials": ("client_id", "client_id_env")}
EITHER["oauth2_refresh_token"] = EITHER["oauth2_client_credentials"]

INTEGRATION_KEYS = (
    "base_url",
    "description",
    "timeout",
    "deadline",
    "retry",
    "breaker",
    "budget",
    "bulkhead",
    "degrade",
    "rate_limit",
    "store",
    "auth",
    "allowed_origins",
    "headers",
    "request_id_header",
    "raise_for_status",
    "drift",
)


def table_secrets(table: Mapping[str, Any]) -> list[str]:
    """Secret values written in an auth table: literal secrets, secret-named ``token_params``, URL
    credentials, and ``*_env`` values that do not look like variable names (secrets pasted in)."""
    found: list[str] = []
    for key, item in table.items():
        if key.endswith("_env"):
            if isinstance(item, str) and not looks_like_env_name(item):
                found.append(item)
        elif key in LITERAL_SECRETS or is_secret_name(key):
            if isinstance(item, str):
                found.append(item)
        elif key == "token_params" and isinstance(item, Mapping):
            found += [
                v
                for k, v in item.items()
                if isinstance(v, str) and (is_secret_name(k) or k in LITERAL_SECRETS)
            ]
        elif key == "token_url":
            found += url_secrets(item)
    return found
