"""What an integration will do, in words and as JSON-ready values, for ``resilient-session check``.

Each policy is shown by its own option specs (``OPTIONS``): what the file can set is what is shown.
No secret value is ever shown; environment variables appear by name, with whether they are set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._redact import looks_like_env_name, redact_url, shown_env_name
from .._worst_case import WorstCase, worst_case
from ..policies.ratelimit import RateLimit, rate_text
from ..retry import RetryPolicy

if TYPE_CHECKING:
    from .model import AuthConfig, IntegrationConfig

__all__ = ["describe", "describe_auth", "policy"]


def describe(config: IntegrationConfig) -> dict[str, str]:
    """The effective policy of *config*, one line per aspect (no secret values)."""
    connect, read = config.timeout
    return {
        "base_url": redact_url(config.base_url),
        "timeout": f"connect {connect:g} s, read {read:g} s",
        "deadline": f"{config.deadline:g} s" if config.deadline is not None else "none",
        "retry": "off" if _retries_off(config.retry) else _describe_retry(config.retry),
        "breaker": _describe_options(config.breaker),
        "budget": _describe_options(config.budget),
        "bulkhead": _describe_options(config.bulkhead),
        "degrade": _describe_degrade(config.degrade),
        "rate_limit": _describe_rate_limit(config.rate_limit),
        "store": _describe_store(config.store),
        "auth": describe_auth(config.auth) if config.auth is not None else "none",
        "auth_origins": _describe_origins(config),
        "headers": ", ".join(f"{k}: {v}" for k, v in config.headers.items()) or "none",
        "request_id_header": config.request_id_header or "none",
        "raise_for_status": str(config.raise_for_status).lower(),
        "drift": config.drift,
        "worst_case": _worst_case(config).describe(),
    }


def policy(config: IntegrationConfig) -> dict[str, Any]:
    """The effective policy of *config* as JSON-ready values: the keys of :func:`describe`, numbers as
    numbers, ``None`` for what is off, and for each environment variable named its name and whether it
    is set (never its value)."""
    connect, read = config.timeout
    auth = config.auth
    return {
        "base_url": config.base_url,
        "timeout": {"connect": connect, "read": read},
        "deadline": config.deadline,
        "retry": None if _retries_off(config.retry) else _option_values(config.retry),
        "breaker": _option_values(config.breaker),
        "budget": _option_values(config.budget),
        "bulkhead": _option_values(config.bulkhead),
        "degrade": _policy_degrade(config.degrade),
        "rate_limit": _option_values(config.rate_limit),
        "store": _policy_store(config.store),
        "auth": None
        if auth is None
        else {
            "type": auth.type,
            **{k: v for k, v in auth.options.items() if k in ("header", "query", "token_url")},
            "env": auth.env_status(),
        },
        "auth_origins": _auth_origins(config),
        "headers": dict(config.headers),
        "request_id_header": config.request_id_header,
        "raise_for_status": config.raise_for_status,
        "drift": config.drift,
        "worst_case": _worst_case_values(config),
    }


def _worst_case(config: IntegrationConfig) -> WorstCase:
    bulkhead = config.bulkhead
    wait = float(bulkhead.max_wait) if bulkhead is not None else 0.0
    quota = float(config.rate_limit.max_wait) if config.rate_limit is not None else 0.0
    return worst_case(config.timeout, config.retry, config.deadline, bulkhead_wait=wait, quota_wait=quota)


def _worst_case_values(config: IntegrationConfig) -> dict[str, Any]:
    """The longest a call takes (``seconds``; ``None``: unbounded), and the same bound per URL without
    the deadline (``per_url``), in seconds."""
    found = _worst_case(config)
    return {"seconds": found.seconds, "per_url": found.per_url}


def _auth_origins(config: IntegrationConfig) -> list[str] | None:
    """Where the auth may be sent: ``base_url``'s origin, then ``allowed_origins``; ``None`` with no auth."""
    from ..auth.origins import allowed_origins

    if config.auth is None:
        return None
    own = allowed_origins(config.base_url, ())
    return [*sorted(own), *(o for o in config.allowed_origins if o not in own)]


def _describe_origins(config: IntegrationConfig) -> str:
    origins = _auth_origins(config)
    return "none (no auth)" if origins is None else ", ".join(origins) + " only"


def describe_auth(auth: AuthConfig) -> str:
    """One line, no secret: the type, where the credential goes, and each variable's name and state."""
    where = ""
    if auth.type == "api_key":
        query = auth.options.get("query")
        where = f" in query {query!r}" if query else f" in header {auth.options.get('header', 'X-API-Key')!r}"
    elif "token_url" in auth.options:
        where = f" from {redact_url(auth.options['token_url'])}"
    variables = ", ".join(
        f"{_dollar(name)} ({'set' if ok else 'NOT SET'})" for name, ok in auth.env_status().items()
    )
    return f"{auth.type}{where}; {variables}"


def _option_values(policy: Any) -> dict[str, Any] | None:
    """Every option *policy* declares, JSON-ready (sets sorted); ``None`` for a policy that is off.
    ``allowed_methods = None`` (every method) stays ``None``."""
    if policy is None:
        return None
    values: dict[str, Any] = {}
    for name in type(policy).OPTIONS:
        value = getattr(policy, name)
        values[name] = sorted(value) if isinstance(value, (frozenset, set, tuple, list)) else value
    routes = getattr(policy, "routes", None)
    if routes is not None:  # a breaker's: true, false or its table of patterns to groups
        values["routes"] = routes if isinstance(routes, bool) else dict(routes.patterns)
    return values


def _retries_off(retry: RetryPolicy) -> bool:
    """``retry = false`` (or ``total = 0``): shown as off, like every other policy that is off."""
    return retry.total is False or retry.total == 0


def _describe_retry(retry: RetryPolicy) -> str:
    statuses = " ".join(str(s) for s in sorted(retry.status_forcelist or ()))
    jitter = "full jitter" if retry.full_jitter else "no jitter"
    return (
        f"total={retry.total}, backoff_factor={retry.backoff_factor:g} "
        f"({jitter}, cap {retry.backoff_max:g} s), "
        f"statuses [{statuses}], raise_on_status={str(retry.raise_on_status).lower()}"
    )


def _describe_options(policy: Any) -> str:
    if policy is None:
        return "off"
    parts = []
    for name in type(policy).OPTIONS:
        value = getattr(policy, name)
        if name == "name":
            continue
        if isinstance(value, frozenset) and value:
            low, high = min(value), max(value)
            contiguous = len(value) == high - low + 1
            value = f"{low}-{high}" if contiguous and len(value) > 2 else sorted(value)
        elif isinstance(value, float):
            value = f"{value:g}"  # 5.0 and 5 read the same: as written in the file
        parts.append(f"{name}={value}")
    routes = getattr(policy, "routes", True)
    if routes is not True:  # the default (a group per resource) goes unsaid, like the store
        parts.append("routes=off" if routes is False else f"routes={dict(routes.patterns)}")
    name = getattr(policy, "name", None)
    return ", ".join(parts) + (f", name={name!r}" if name else "")


def _describe_rate_limit(limit: RateLimit | None) -> str:
    """``100/min static, burst 1; learned from the upstream's headers (lower only); adaptive after 429s;
    a call waits at most 60 s``."""
    if limit is None:
        return "off"
    parts = [
        f"{rate_text(limit.static_rate)} static, burst {limit.burst}" if limit.calls else "no static quota"
    ]
    if limit.learn:
        parts.append("learned from the upstream's headers" + ("" if limit.learn_upwards else " (lower only)"))
    if limit.adaptive:
        parts.append("adaptive after 429s")
    if limit.partition_header:
        parts.append(f"one per {limit.partition_header} value")
    parts.append(f"a call waits at most {limit.max_wait:g} s")
    return "; ".join(parts)


def _policy_store(store: Mapping[str, Any] | None) -> dict[str, Any]:
    if not store or store.get("type", "memory") == "memory":
        return {"type": "memory", **({"ttl": store["ttl"]} if store and "ttl" in store else {})}
    name = store["url_env"]
    options = {k: v for k, v in store.items() if k not in ("type", "url_env")}
    return {"type": "redis", **options, "env": {name: bool(os.environ.get(name, "").strip())}}


def _describe_store(store: Mapping[str, Any] | None) -> str:
    if not store or store.get("type", "memory") == "memory":
        return "memory (this process)"
    name = store["url_env"]
    state = "set" if os.environ.get(name, "").strip() else "NOT SET"
    return f"redis; URL from {_dollar(name)} ({state})"


def _describe_degrade(table: Mapping[str, Any] | None) -> str:
    if table is None:
        return "off"
    parts = [
        f"{k}={'declared' if k == 'fallback' else v}"
        for k, v in table.items()
        if k not in ("store", "routes")
    ]
    store = table.get("store") or {}
    kind = store.get("type", "sqlite")
    if kind == "redis":
        state = "set" if os.environ.get(store["url_env"], "").strip() else "NOT SET"
        parts.append(f"store=redis; URL from {_dollar(store['url_env'])} ({state})")
    else:
        where = store.get("path") or ("this process" if kind == "memory" else "user cache directory")
        parts.append(f"store={kind} ({where})")
    for pattern, sub in (table.get("routes") or {}).items():
        parts.append(f"{pattern}: off" if sub is False else f"{pattern}: {dict(sub)}")
    return ", ".join(parts)


def _policy_degrade(table: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if table is None:
        return None
    found = {k: v for k, v in table.items() if k != "store"}
    store = dict(table.get("store") or {"type": "sqlite"})
    name = store.pop("url_env", None)
    if name is not None:
        store["env"] = {name: bool(os.environ.get(name, "").strip())}
    return {**found, "store": store}


def _dollar(name: str) -> str:
    """``$NAME`` for a variable name, or the hidden marker for what looks like a pasted secret."""
    return f"${name}" if looks_like_env_name(name) else shown_env_name(name)
