"""The integrations file's ``degrade`` table, built into a :class:`~resilient_session.policies.Degrade`.

::

    [integrations.catalog.degrade]
    max_stale = 600
    on = ["circuit_open", "timeout", "connection"]
    fallback = { items = [] }
    store = { type = "redis", url_env = "DEGRADE_REDIS_URL" }
    routes = { "/v1/prices" = { max_stale = 30 }, "/v1/payments" = false }

``degrade = true`` is the defaults, ``false`` none. A route's table changes its parent's options; the
routes share the parent's store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._options import Option, show
from ..policies.degrade import FAILURES, Degrade
from ..policies.routes import pattern_problem
from .schema import HEADER_NAME, POSITIVE, STRING, env_name, one_of, policy_kwargs, policy_schema

__all__ = ["DEGRADE_KEYS", "build", "check"]

Problem = Callable[[str, str], None]

_STORE = {
    "type": one_of("memory", "sqlite", "redis"),
    "path": STRING,
    "url_env": env_name,
    "timeout": POSITIVE,
    "max_entries": Option("integer", minimum=1).file_problem,
    "max_bytes": Option("integer", minimum=1).file_problem,
}


def _on(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"expected an array of failures, got {show(value)}"
    unknown = sorted(v for v in value if v not in FAILURES)
    if unknown:
        return f"unknown failure(s) {', '.join(unknown)} (known: {', '.join(sorted(FAILURES))})"
    return None


def _key_headers(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"expected an array of header names, got {show(value)}"
    for index, item in enumerate(value):
        problem = HEADER_NAME(item)
        if problem is not None:
            return f"[{index}] {problem}"
    return None


def _anything(value: Any) -> str | None:
    return None


#: Keys of a ``degrade`` table (and of each of its ``routes``, but ``store`` and ``routes``).
DEGRADE_KEYS: dict[str, Callable[[Any], str | None]] = {
    **policy_schema(Degrade),
    "on": _on,
    "key_headers": _key_headers,
    "fallback": _anything,
}


def check(where: str, value: Any, problem: Problem, *, nested: bool = False) -> dict[str, Any] | None:
    """The checked ``degrade`` table *value* (``{}`` for ``true``, ``None`` for ``false`` or when invalid);
    each problem is reported through *problem* with its location."""
    if value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, Mapping):
        problem(where, f"expected true, false or a table, got {show(value)}")
        return None
    valid: dict[str, Any] = {}
    ok = True
    known = {**DEGRADE_KEYS, **({} if nested else {"store": None, "routes": None})}
    for key, item in value.items():
        if key not in known:
            problem(f"{where}.{key}", f"unknown key (expected one of: {', '.join(sorted(known))})")
            ok = False
        elif key == "store":
            ok = _store(f"{where}.store", item, problem) and ok
            valid[key] = item
        elif key == "routes":
            routes = _routes(f"{where}.routes", item, problem)
            ok = routes is not None and ok
            valid[key] = routes
        else:
            found = DEGRADE_KEYS[key](item)
            if found is not None:
                problem(f"{where}.{key}", found)
                ok = False
            valid[key] = item
    if not ok:
        return None
    try:
        build(valid, checking=True)  # what only the constructor judges
    except (TypeError, ValueError) as exc:
        problem(where, str(exc))
        return None
    return valid


def _store(where: str, value: Any, problem: Problem) -> bool:
    if not isinstance(value, Mapping):
        problem(where, f"expected a table, got {show(value)}")
        return False
    ok = True
    for key, item in value.items():
        if key not in _STORE:
            problem(f"{where}.{key}", f"unknown key (expected one of: {', '.join(sorted(_STORE))})")
            ok = False
            continue
        found = _STORE[key](item)
        if found is not None:
            problem(f"{where}.{key}", found)
            ok = False
    kind = value.get("type", "sqlite")
    if kind == "redis" and "url_env" not in value:
        problem(f"{where}.url_env", 'required when type = "redis" (the variable holding redis://...)')
        ok = False
    if kind != "redis" and "url_env" in value:
        problem(f"{where}.url_env", 'applies to type = "redis" only')
        ok = False
    if kind != "sqlite" and "path" in value:
        problem(f"{where}.path", 'applies to type = "sqlite" only')
        ok = False
    for key in ("max_entries", "max_bytes"):
        if kind != "memory" and key in value:
            problem(f"{where}.{key}", 'applies to type = "memory" only')
            ok = False
    return ok


def _routes(where: str, value: Any, problem: Problem) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        problem(where, f"expected a table of path patterns to tables or false, got {show(value)}")
        return None
    found: dict[str, Any] = {}
    ok = True
    for pattern, item in value.items():
        bad = pattern_problem(pattern)
        if bad is not None:
            problem(f"{where}.{pattern}", bad)
            ok = False
            continue
        if item is False:
            found[pattern] = False
            continue
        table = check(f"{where}.{pattern}", item, problem, nested=True)
        if table is None:
            ok = False
        found[pattern] = table
    return found if ok else None


def build(table: Mapping[str, Any], *, store: Any = None, checking: bool = False) -> Degrade:
    """The policy a checked ``degrade`` table describes. Its store is built now (a Redis URL read from
    its environment variable), unless *checking*, or *store* is given (the routes share their parent's)."""
    options = {k: v for k, v in table.items() if k not in ("store", "routes")}
    kwargs = policy_kwargs(Degrade, options)
    if "key_headers" in kwargs:
        kwargs["key_headers"] = tuple(kwargs["key_headers"])
    if "on" in kwargs:
        kwargs["on"] = frozenset(kwargs["on"])
    if store is None and table.get("store") is not None and not checking:
        store = _build_store(table["store"])
    routes = None
    if table.get("routes"):
        routes = {
            # A route's table changes its parent's options.
            pattern: False if sub is False else build({**options, **sub}, store=store, checking=checking)
            for pattern, sub in table["routes"].items()
        }
    return Degrade(**kwargs, store=store, routes=routes)


def _build_store(table: Mapping[str, Any]) -> Any:
    from ..stores.responses import DEFAULT_STORE_TIMEOUT, ResponseStore

    timeout = float(table.get("timeout", DEFAULT_STORE_TIMEOUT))
    kind = table.get("type", "sqlite")
    if kind == "memory":
        bounds = {key: int(table[key]) for key in ("max_entries", "max_bytes") if key in table}
        return ResponseStore.memory(timeout=timeout, **bounds)
    if kind == "sqlite":
        return ResponseStore.sqlite(table.get("path"), timeout=timeout)
    from ..auth.keys import env_secret

    return ResponseStore.redis(env_secret(table["url_env"]), timeout=timeout)
