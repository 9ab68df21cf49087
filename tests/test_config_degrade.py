"""The integrations file's ``degrade`` table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resilient_session import InvalidConfigError, ResilientSession
from resilient_session.config import load_config
from resilient_session.policies import Degrade
from resilient_session.stores import ResponseStore

pytest.importorskip("requests_cache")


def one(**table: Any) -> dict[str, Any]:
    return {"integrations": {"api": {"base_url": "https://api.example.com/v1", **table}}}


def problems_of(document: Any) -> tuple[str, ...]:
    with pytest.raises(InvalidConfigError) as info:
        load_config(document)
    return info.value.problems


def test_a_degrade_table_builds_the_policy_with_its_store_and_routes(tmp_path: Path) -> None:
    path = str(tmp_path / "degrade.sqlite")
    document = one(
        degrade={
            "max_stale": 600,
            "on": ["circuit_open", "timeout"],
            "failure_statuses": [503],
            "store_authorized": True,
            "key_headers": ["X-Tenant"],
            "fallback": {"items": []},
            "store": {"type": "sqlite", "path": path, "timeout": 0.2},
            "routes": {"/v1/prices": {"max_stale": 30}, "/v1/payments": False},
        }
    )
    session = ResilientSession.from_config(document, "api")
    policy = session.degrade
    assert isinstance(policy, Degrade)
    assert policy.max_stale == 600
    assert policy.on == frozenset({"circuit_open", "timeout"})
    assert policy.failure_statuses == frozenset({503})
    assert policy.store_authorized is True
    assert policy.key_headers == ("X-Tenant",)
    assert policy.fallback == {"items": []}
    assert isinstance(policy.store, ResponseStore) and policy.store.timeout == 0.2
    prices = policy.for_path("/v1/prices/1")
    assert prices is not None and prices.max_stale == 30 and prices.store is policy.store
    assert prices.store_authorized is True and prices.on == policy.on  # the rest is the parent's
    assert policy.for_path("/v1/payments/1") is None
    assert str(policy.store.backend.db_path) == path


def test_true_is_the_defaults_and_false_is_none() -> None:
    on = ResilientSession.from_config(one(degrade=True), "api").degrade
    assert on is not None and on.max_stale == Degrade().max_stale and on.store is None
    assert ResilientSession.from_config(one(degrade=False), "api").degrade is None
    assert ResilientSession.from_config(one(), "api").degrade is None


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"max_stale": -5}, "integrations.api.degrade.max_stale: must be >= 0"),
        ({"max_stale": "long"}, "integrations.api.degrade.max_stale: expected a number"),
        ({"on": ["sunspots"]}, "integrations.api.degrade.on: unknown failure(s) sunspots"),
        ({"colour": 1}, "integrations.api.degrade.colour: unknown key"),
        ({"store": {"type": "redis"}}, "integrations.api.degrade.store.url_env: required"),
        ({"store": {"type": "memory", "path": "/x"}}, "integrations.api.degrade.store.path: applies to"),
        ({"store": {"max_entries": 10}}, "integrations.api.degrade.store.max_entries: applies to"),
        ({"store": {"type": "memory", "max_bytes": 0}}, "integrations.api.degrade.store.max_bytes: must be"),
        ({"routes": {"reports": False}}, "integrations.api.degrade.routes.reports:"),
        (
            {"routes": {"/r": {"store": {"type": "memory"}}}},
            "integrations.api.degrade.routes./r.store: unknown key",
        ),
        ({"key_headers": ["bad header"]}, "integrations.api.degrade.key_headers: [0]"),
        ("yes", "integrations.api.degrade: expected true, false or a table"),
    ],
)
def test_each_problem_is_reported_at_its_location(table: Any, problem: str) -> None:
    found = problems_of(one(degrade=table))
    assert any(p.startswith(problem) for p in found), found


def test_a_memory_store_takes_its_bounds_from_the_file() -> None:
    table = {"store": {"type": "memory", "max_entries": 2, "max_bytes": 4096}}
    policy = ResilientSession.from_config(one(degrade=table), "api").degrade
    assert policy is not None and policy.store is not None
    assert policy.store._recipe == ("memory", (2, 4096))


def test_a_redis_store_reads_its_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("redis")
    document = one(degrade={"store": {"type": "redis", "url_env": "DEGRADE_REDIS"}})
    with pytest.raises(InvalidConfigError, match="DEGRADE_REDIS"):
        ResilientSession.from_config(document, "api")
    monkeypatch.setenv("DEGRADE_REDIS", "redis://127.0.0.1:1/0")
    policy = ResilientSession.from_config(document, "api").degrade
    assert policy is not None and isinstance(policy.store, ResponseStore)


def test_check_describes_the_policy_without_the_fallback_or_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEGRADE_REDIS", raising=False)
    document = one(
        degrade={
            "max_stale": 60,
            "fallback": {"internal": "value"},
            "store": {"type": "redis", "url_env": "DEGRADE_REDIS"},
            "routes": {"/v1/payments": False},
        }
    )
    config = load_config(document)["api"]
    line = config.describe()["degrade"]
    expected = "max_stale=60, fallback=declared, store=redis; URL from $DEGRADE_REDIS (NOT SET)"
    assert line == expected + ", /v1/payments: off"
    values = config.policy()["degrade"]
    assert values["store"] == {"type": "redis", "env": {"DEGRADE_REDIS": False}}
    assert config.env_vars()["integrations.api.degrade.store.url_env"] == "DEGRADE_REDIS"
    assert load_config(one())["api"].describe()["degrade"] == "off"
