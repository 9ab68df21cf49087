"""The integrations file: valid documents, every kind of invalid one, and the sessions built from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resilient_session import (
    APIKeyAuth,
    BasicAuth,
    BearerAuth,
    Bulkhead,
    CircuitBreaker,
    ConfigurationError,
    InvalidConfigError,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    ResilientSession,
    RetryBudget,
    RetryPolicy,
    load_integrations,
)
from resilient_session.config import load_config
from resilient_session.config.schema import TABLE_OPTIONS, policy_schema
from resilient_session.policies import RateLimit
from resilient_session.stores import RedisStore

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "integrations.toml"
ENV = {
    "BILLING_API_TOKEN": "tok-billing-123",
    "CRM_API_KEY": "key-crm-456",
    "IDENTITY_CLIENT_ID": "orders",
    "IDENTITY_CLIENT_SECRET": "shh-789",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return ENV


def one(**table: Any) -> dict[str, Any]:
    """A document with one integration ``api`` made of *table* (``base_url`` filled in)."""
    return {"integrations": {"api": {"base_url": "https://api.example.com/v1", **table}}}


def problems_of(document: Any) -> tuple[str, ...]:
    with pytest.raises(InvalidConfigError) as info:
        load_config(document)
    return info.value.problems


# -- valid --------------------------------------------------------------------------------------------


def test_the_example_file_is_valid_and_means_what_it_says() -> None:
    configs = load_config(EXAMPLE)
    assert set(configs) == {"billing", "crm", "identity"}
    billing, crm, identity = configs["billing"], configs["crm"], configs["identity"]
    assert billing.timeout == (3.05, 20.0) and billing.deadline == 30 and billing.raise_for_status
    assert isinstance(billing.retry, RetryPolicy)
    assert (billing.retry.total, billing.retry.backoff_factor, billing.retry.backoff_max) == (4, 0.5, 10)
    assert billing.retry.status_forcelist == {429, 502, 503, 504}
    assert billing.breaker is not None
    assert billing.breaker == CircuitBreaker(
        failure_rate_threshold=0.5, window_size=20, minimum_calls=10, consecutive_failures=5,
        open_wait=5, max_open_wait=60, store=billing.breaker.store,
    )  # fmt: skip
    assert billing.budget is not None and billing.budget.capacity == 500
    assert crm.timeout == (10.0, 10.0) and crm.retry.total == 2
    assert crm.bulkhead is not None and (crm.bulkhead.max_concurrent, crm.bulkhead.max_wait) == (5, 0.5)
    assert crm.request_id_header == "X-Correlation-ID"
    assert identity.breaker is not None
    assert identity.budget is None and identity.breaker == CircuitBreaker(store=identity.breaker.store)
    assert identity.retry.raise_on_status is True
    assert identity.auth is not None and identity.auth.env == {
        "client_id_env": "IDENTITY_CLIENT_ID",
        "client_secret_env": "IDENTITY_CLIENT_SECRET",
    }


def test_load_integrations_builds_one_session_per_integration(env: dict[str, str]) -> None:
    sessions = load_integrations(EXAMPLE)
    billing, crm = sessions["billing"], sessions["crm"]
    assert isinstance(billing, ResilientSession)
    assert billing.base_url == "https://api.billing.example.com/v1" and billing.integration == "billing"
    assert billing.timeout == (3.05, 20.0) and billing.deadline == 30 and billing.raise_for_status
    assert billing.headers["User-Agent"] == "orders-service/2.3"
    assert isinstance(billing.auth, BearerAuth) and billing.auth.secret_values == ("tok-billing-123",)
    assert billing.retry.total == 4 and billing.get_adapter("https://x").max_retries.total == 4  # type: ignore[attr-defined]
    assert isinstance(crm.auth, APIKeyAuth) and crm.auth.header == "X-API-Key"
    assert crm.bulkhead is not None and crm.bulkhead.max_concurrent == 5
    assert crm.request_id_header == "X-Correlation-ID"
    identity = sessions["identity"]
    assert isinstance(identity.auth, OAuth2ClientCredentials) and identity.auth.client_id == "orders"
    assert identity.breaker is not None
    assert type(identity.breaker.store).__name__ == "RedisStore"  # no connection until first use
    assert identity.budget is None


def test_from_config_picks_one_integration(env: dict[str, str]) -> None:
    session = ResilientSession.from_config(EXAMPLE, "crm")
    assert session.integration == "crm" and session.base_url == "https://crm.example.com/api"


def test_from_config_without_a_name_needs_a_single_integration() -> None:
    session = ResilientSession.from_config(one(retry=False))
    assert session.integration == "api" and session.retry.total == 0
    with pytest.raises(ConfigurationError, match=r"3 integrations \(billing, crm, identity\); pass name="):
        ResilientSession.from_config(EXAMPLE)
    with pytest.raises(ConfigurationError, match=r"no integration 'nope'.*defined: billing, crm, identity"):
        ResilientSession.from_config(EXAMPLE, "nope")


def test_from_config_keeps_the_subclass() -> None:
    class Mine(ResilientSession):
        pass

    assert type(Mine.from_config(one())) is Mine


@pytest.mark.parametrize(
    ("auth", "env", "cls"),
    [
        ({"type": "api_key", "key_env": "K", "query": "api_key"}, {"K": "k-1234"}, APIKeyAuth),
        ({"type": "bearer", "token_env": "T"}, {"T": "t-1234"}, BearerAuth),
        ({"type": "basic", "username": "svc", "password_env": "P"}, {"P": "p-1234"}, BasicAuth),
        ({"type": "basic", "username_env": "U", "password_env": "P"}, {"U": "svc", "P": "p-1234"}, BasicAuth),
        (
            {
                "type": "oauth2_refresh_token",
                "token_url": "https://id.example.com/token",
                "client_id": "app",
                "refresh_token_env": "R",
                "timeout": 5,
            },
            {"R": "r-1234"},
            OAuth2RefreshToken,
        ),
    ],
)
def test_each_auth_type_builds_from_the_environment(
    auth: dict[str, Any], env: dict[str, str], cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    session = ResilientSession.from_config(one(auth=auth))
    assert isinstance(session.auth, cls)
    assert set(session.auth.secret_values) >= {v for k, v in env.items() if k != "U"}  # type: ignore[union-attr]


def test_shorthands() -> None:
    config = load_config(one(retry=5, breaker=True, budget=False, bulkhead=True, deadline=False))["api"]
    assert config.breaker is not None
    assert config.retry.total == 5 and config.breaker == CircuitBreaker(store=config.breaker.store)
    assert config.budget is None and config.bulkhead is not None and config.deadline is None
    off = load_config(one(retry=False, request_id_header=False, breaker={"failure_rate_threshold": False}))
    assert off["api"].retry.total == 0 and off["api"].request_id_header is None
    assert off["api"].breaker is not None and off["api"].breaker.failure_rate_threshold is None


def test_a_budget_table_keeps_its_values() -> None:
    config = load_config(one(budget={"capacity": 50, "retry_cost": 2, "name": "shared"}))["api"]
    assert config.budget is not None
    assert config.budget == RetryBudget(capacity=50, retry_cost=2, name="shared", store=config.budget.store)


def test_a_redis_store_table_builds_the_store_its_constructor_would(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_URL", "redis://127.0.0.1:1/0")
    table = {"type": "redis", "url_env": "STATE_URL", "prefix": "p", "ttl": 60, "op_timeout": 0.02}
    store = load_config(one(store=table))["api"].session_kwargs()["breaker"].store
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.ttl, store.op_timeout) == ("p", 60, 0.02)
    default = load_config(one(store={"type": "redis", "url_env": "STATE_URL"}))["api"]
    assert default.session_kwargs()["budget"].store.op_timeout == 0.1


# -- invalid ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({}, "integrations: missing"),
        ({"integrations": {}}, "integrations: expected at least one"),
        ({"integrations": {"api": {"base_url": "https://x"}}, "version": 2}, "version: unknown key"),
        ({"integrations": {"api": "https://x"}}, 'integrations.api: expected a table, got "https://x"'),
        ({"integrations": {"a b": {"base_url": "https://x"}}}, "integrations.a b: integration names"),
        ({"integrations": {"api": {}}}, "integrations.api.base_url: missing"),
        (
            one(base_url="ftp://files.example.com"),
            "integrations.api.base_url: expected an http:// or https://",
        ),
        (
            one(base_url="https://u:pw@x.example.com"),
            "integrations.api.base_url: must not contain a password",
        ),
        (
            one(base_url="https://x.example.com/?api_key=abc"),
            "integrations.api.base_url: must not contain a cred",
        ),
        (
            one(colour="blue"),
            "integrations.api.colour: unknown key (expected one of: allowed_origins, auth, base_url",
        ),
        (one(timeout=0), "integrations.api.timeout: must be > 0, got 0"),
        (one(timeout="10s"), 'integrations.api.timeout: expected a number, got "10s"'),
        (one(timeout={"connect": 1, "total": 5}), "integrations.api.timeout.total: unknown key"),
        (one(deadline=-1), "integrations.api.deadline: must be > 0, got -1"),
        (one(retry={"total": "three"}), 'integrations.api.retry.total: expected an integer, got "three"'),
        (one(retry={"total": True}), "integrations.api.retry.total: expected an integer, got true"),
        (one(retry={"total": -1}), "integrations.api.retry.total: must be >= 0, got -1"),
        (one(retry={"backoff_factor": "fast"}), "integrations.api.retry.backoff_factor: expected a number"),
        (
            one(retry={"status_forcelist": [503, 700]}),
            "integrations.api.retry.status_forcelist: [1] expected an HTTP",
        ),
        (one(retry={"allowed_methods": "GET"}), "integrations.api.retry.allowed_methods: expected an array"),
        (
            one(retry={"full_jitter": "yes"}),
            'integrations.api.retry.full_jitter: expected true or false, got "yes"',
        ),
        (one(retry={"backof_factor": 1}), "integrations.api.retry.backof_factor: unknown key"),
        (
            one(retry="always"),
            "integrations.api.retry: expected a number of retries, true, false or a retry policy, "
            'got "always"',
        ),
        (
            one(breaker={"failure_rate_threshold": 1.5}),
            "integrations.api.breaker.failure_rate_threshold: must be <= 1",
        ),
        (
            one(breaker={"window_size": 5, "minimum_calls": 10}),
            "integrations.api.breaker: need minimum_calls <= window_size",
        ),
        (one(breaker={"treshold": 3}), "integrations.api.breaker.treshold: unknown key"),
        (one(budget={"capacity": 0}), "integrations.api.budget.capacity: must be > 0, got 0"),
        (
            one(bulkhead={"max_concurrent": 0}),
            "integrations.api.bulkhead.max_concurrent: must be >= 1, got 0",
        ),
        (one(bulkhead="lots"), 'integrations.api.bulkhead: expected a table, got "lots"'),
        (one(store={"type": "redis"}), 'integrations.api.store.url_env: required when type = "redis"'),
        (one(store={"type": "memcached"}), 'integrations.api.store.type: expected one of "memory", "redis"'),
        (
            one(store={"type": "memory", "op_timeout": 0.1}),
            'integrations.api.store.op_timeout: applies to type = "redis" only',
        ),
        (one(store={"op_timeout": 0.1}), 'integrations.api.store.op_timeout: applies to type = "redis" only'),
        (one(store={"prefix": "p"}), 'integrations.api.store.prefix: applies to type = "redis" only'),
        (
            one(store={"type": "redis", "url_env": "R", "op_timeout": 0}),
            "integrations.api.store.op_timeout: must be > 0, got 0",
        ),
        (
            one(store={"type": "redis", "url_env": "R", "op_timeout": "fast"}),
            'integrations.api.store.op_timeout: expected a number, got "fast"',
        ),
        (one(headers={"Accept": 1}), "integrations.api.headers.Accept: expected a string, got 1"),
        (one(headers={"Bad Header": "x"}), "integrations.api.headers.Bad Header: not a valid header name"),
        (
            one(request_id_header="X Request"),
            'integrations.api.request_id_header: "X Request" is not a valid',
        ),
        (one(raise_for_status="yes"), "integrations.api.raise_for_status: expected true or false"),
        (one(auth={"key_env": "K"}), "integrations.api.auth.type: missing (one of: api_key, bearer, basic"),
        (one(auth={"type": "digest"}), 'integrations.api.auth.type: expected one of "api_key"'),
        (one(auth={"type": "bearer"}), 'integrations.api.auth.token_env: required for type = "bearer"'),
        (
            one(auth={"type": "bearer", "token_env": "my token"}),
            "integrations.api.auth.token_env: is not an environment variable name",
        ),
        (
            one(auth={"type": "bearer", "token_env": "T", "header": "X"}),
            "integrations.api.auth.header: unknown key",
        ),
        (
            one(auth={"type": "api_key", "key_env": "K", "header": "A", "query": "k"}),
            "integrations.api.auth: set header or query, not",
        ),
        (
            one(auth={"type": "basic", "password_env": "P"}),
            "integrations.api.auth: set exactly one of username or username_env",
        ),
        (
            one(auth={"type": "oauth2_client_credentials", "client_id": "a", "client_secret_env": "S"}),
            'integrations.api.auth.token_url: required for type = "oauth2_client_credentials"',
        ),
    ],
)
def test_each_invalid_case_is_reported_at_its_location(document: dict[str, Any], problem: str) -> None:
    problems = problems_of(document)
    assert any(p.startswith(problem) for p in problems), problems


@pytest.mark.parametrize("key", ["key", "token", "password", "client_secret", "refresh_token", "api_key"])
def test_a_secret_written_in_the_file_is_an_error_that_never_repeats_it(key: str) -> None:
    secret = "sk_live_0123456789abcdef"
    with pytest.raises(InvalidConfigError) as info:
        load_config(one(auth={"type": "bearer", "token_env": "T", key: secret}))
    assert any(
        p.startswith(f"integrations.api.auth.{key}: secret values must not be written")
        for p in info.value.problems
    )
    assert secret not in str(info.value) and secret not in repr(info.value)


def test_a_credential_header_is_an_error_that_never_repeats_it() -> None:
    problems = problems_of(one(headers={"Authorization": "Bearer abcdef123456"}))
    assert problems[0].startswith("integrations.api.headers.Authorization: credentials must not be written")
    assert "abcdef123456" not in "".join(problems)


def test_every_problem_is_listed_in_one_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[integrations.stripe]
base_url = "https://api.stripe.com/v1"
retry = { total = "three" }
colour = "blue"

[integrations.crm]
timeout = -2
auth = { type = "bearer", token = "literal" }
""",
        encoding="utf-8",
    )
    with pytest.raises(InvalidConfigError) as info:
        load_config(path)
    assert info.value.problems == (
        "integrations.stripe.colour: unknown key (expected one of: allowed_origins, auth, base_url, "
        "breaker, budget, bulkhead, deadline, degrade, description, drift, headers, raise_for_status, "
        "rate_limit, "
        "request_id_header, retry, store, timeout)",
        'integrations.stripe.retry.total: expected an integer, got "three"',
        'integrations.crm.base_url: missing (e.g. base_url = "https://api.example.com/v1")',
        "integrations.crm.timeout: must be > 0, got -2",
        "integrations.crm.auth.token: secret values must not be written in the file; name the environment "
        'variable holding it instead (token_env = "MY_SECRET")',
        'integrations.crm.auth.token_env: required for type = "bearer"',
    )
    message = str(info.value)
    assert message.startswith(f"6 problems in {path}:")
    assert all(f"  - {problem}" in message for problem in info.value.problems)
    assert isinstance(info.value, ConfigurationError) and isinstance(info.value, ValueError)


def test_invalid_toml_is_one_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[integrations.api\nbase_url = 1\n", encoding="utf-8")
    (problem,) = problems_of(path)
    assert problem.startswith("invalid TOML:") and "line 1" in problem


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_unset_environment_variables_are_all_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRM_API_KEY", "  ")  # blank counts as unset
    with pytest.raises(InvalidConfigError) as info:
        load_integrations(EXAMPLE)
    assert info.value.problems == (
        "integrations.billing.auth.token_env: environment variable BILLING_API_TOKEN is not set",
        "integrations.crm.auth.key_env: environment variable CRM_API_KEY is not set",
        "integrations.identity.auth.client_id_env: environment variable IDENTITY_CLIENT_ID is not set",
        "integrations.identity.auth.client_secret_env: "
        "environment variable IDENTITY_CLIENT_SECRET is not set",
        "integrations.identity.store.url_env: environment variable REDIS_URL is not set",
    )


# -- secrets in the file are refused and never echoed ---------------------------------------------------


def _problems(document: str, tmp_path: Any) -> tuple[str, ...]:
    from resilient_session import InvalidConfigError
    from resilient_session.config import load_config

    path = tmp_path / "c.toml"
    path.write_text("[integrations.api]\n" + document + "\n", encoding="utf-8")
    with pytest.raises(InvalidConfigError) as raised:
        load_config(path)
    assert raised.value.__context__ is None
    return (str(raised.value), *raised.value.problems)


def test_token_params_refuse_a_client_secret(tmp_path: Any) -> None:
    problems = _problems(
        'base_url = "https://api.example.com"\n'
        'auth = { type = "oauth2_client_credentials", token_url = "https://id.example.com/token", '
        'client_id = "c", client_secret_env = "CS", token_params = { client_secret = "hunter2hunter2" } }',
        tmp_path,
    )
    assert any("token_params" in p and "must not be written" in p for p in problems)
    assert not any("hunter2hunter2" in p for p in problems)


def test_token_params_keep_ordinary_fields() -> None:
    from resilient_session.config import load_config

    document = {
        "integrations": {
            "api": {
                "base_url": "https://api.example.com",
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": "https://id.example.com/token",
                    "client_id": "c",
                    "client_secret_env": "CS",
                    "token_params": {"audience": "https://api.example.com"},
                },
            }
        }
    }
    config = load_config(document)["api"]
    assert config.auth is not None and config.auth.options["token_params"] == {
        "audience": "https://api.example.com"
    }


@pytest.mark.parametrize(
    "base_url",
    [
        "htps://u:hunter2hunter2@api.example.com",
        "https:///v1?api_key=hunter2hunter2",
        "ftp://h/?token=hunter2hunter2",
    ],
)
def test_a_bad_base_url_is_reported_without_its_credential(base_url: str, tmp_path: Any) -> None:
    problems = _problems(f'base_url = "{base_url}"', tmp_path)
    assert any("base_url" in p for p in problems)
    assert not any("hunter2hunter2" in p for p in problems), problems


def test_a_token_url_with_a_credential_is_refused(tmp_path: Any) -> None:
    problems = _problems(
        'base_url = "https://api.example.com"\n'
        'auth = { type = "oauth2_refresh_token", '
        'token_url = "https://id.example.com/t?client_secret=hunter2hunter2", '
        'client_id = "c", refresh_token_env = "RT" }',
        tmp_path,
    )
    assert any("token_url" in p and "credential" in p for p in problems)
    assert not any("hunter2hunter2" in p for p in problems)


@pytest.mark.parametrize("pasted", ["sk-live/abc+def=ghi", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"])
def test_a_secret_pasted_into_an_env_key_is_never_printed(
    pasted: str, tmp_path: Any, monkeypatch: Any
) -> None:
    from resilient_session import ConfigurationError
    from resilient_session.config import session_from_config

    monkeypatch.delenv(pasted, raising=False)
    path = tmp_path / "c.toml"
    path.write_text(
        '[integrations.api]\nbase_url = "https://api.example.com"\n'
        f'auth = {{ type = "bearer", token_env = "{pasted}" }}\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError) as raised:
        session_from_config(path)
    assert pasted not in str(raised.value)
    assert "4eC39" not in str(raised.value)


# -- one source of truth: the policy tables are the policies' own options --------------------------------

POLICY_TABLES: dict[str, Any] = {
    "retry": RetryPolicy,
    "breaker": CircuitBreaker,
    "budget": RetryBudget,
    "bulkhead": Bulkhead,
    "rate_limit": RateLimit,
}

# A value each kind of option refuses, as the file would write it and as Python would pass it.
_BAD = {
    "count": -1,
    "integer": 0,
    "number": -0.5,
    "boolean": "yes",
    "string": "  ",
    "header": "Bad Header",
    "statuses": [200, 999],
    "methods": ["GET", "G3T"],
}


def _option_cases() -> list[tuple[str, str, Any]]:
    cases = []
    for table, policy in POLICY_TABLES.items():
        for name, option in policy.OPTIONS.items():
            bad: Any = _BAD[option.kind]
            if option.kind in ("integer", "number") and option.minimum:
                bad = option.minimum - 1  # below the policy's own bound, whatever it is
            cases.append((table, name, bad))
    return cases


@pytest.mark.parametrize(("table", "key", "bad"), _option_cases())
def test_the_file_refuses_exactly_what_the_policy_refuses(table: str, key: str, bad: Any) -> None:
    policy = POLICY_TABLES[table]
    python_value = tuple(bad) if isinstance(bad, list) else bad  # ordered, so [index] agrees
    with pytest.raises((TypeError, ValueError)) as raised:
        policy(**{key: python_value})
    (problem,) = problems_of(one(**{table: {key: bad}}))
    assert problem == f"integrations.api.{table}.{key}: {str(raised.value).partition(': ')[2]}"


@pytest.mark.parametrize("table", sorted(POLICY_TABLES))
def test_every_option_of_a_policy_is_a_key_of_its_table(table: str) -> None:
    policy = POLICY_TABLES[table]
    # An unknown key is reported with the keys the table does take: exactly the policy's options.
    (problem,) = problems_of(one(**{table: {"no_such_option": 1}}))
    assert problem == (
        f"integrations.api.{table}.no_such_option: unknown key (expected one of: "
        f"{', '.join(sorted(policy_schema(policy)))})"
    )
    # The policy's plain-data options, plus the tables only the file spells as tables (a breaker's routes).
    assert set(policy_schema(policy)) == {*policy.OPTIONS, *TABLE_OPTIONS.get(policy, {})}


@pytest.mark.parametrize("table", sorted(POLICY_TABLES))
def test_the_configuration_reference_lists_every_option_and_no_other(table: str) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split(f"### `{table}`\n", 1)[1].split("\n### ", 1)[0]
    documented: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            first_cell = row.split("|")[1]
            documented.update(part.strip(" `") for part in first_cell.split(","))
    assert documented == set(policy_schema(POLICY_TABLES[table]))


def test_the_configuration_reference_lists_every_store_option_and_no_other() -> None:
    from resilient_session.config.schema import STORE

    text = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split("### `store`\n", 1)[1].split("\n### ", 1)[0]
    documented = {row.split("|")[1].strip(" `") for row in section.splitlines() if row.startswith("| `")}
    assert documented == set(STORE)


def test_a_valid_table_builds_the_policy_its_constructor_would() -> None:
    (config,) = load_config(
        one(
            retry={
                "total": 2,
                "backoff_jitter": 0.25,
                "retry_after_max": 60,
                "allowed_methods": ["get", "post"],
            },
            breaker={"failure_statuses": [500, 503], "consecutive_failures": False},
            bulkhead={"max_concurrent": 3, "max_wait": 0},
        )
    ).values()
    assert config.retry.backoff_jitter == 0.25 and config.retry.retry_after_max == 60
    assert config.retry.allowed_methods == frozenset({"GET", "POST"})
    assert config.breaker is not None and config.breaker.consecutive_failures is None
    assert config.breaker.failure_statuses == frozenset({500, 503})
    assert config.bulkhead is not None and (config.bulkhead.max_concurrent, config.bulkhead.max_wait) == (
        3,
        0,
    )


def test_redirect_options_are_not_keys_of_the_retry_table() -> None:
    (problem,) = problems_of(one(retry={"redirect": 3}))
    assert problem.startswith("integrations.api.retry.redirect: unknown key")


def test_drift_policy_from_the_file_reaches_the_session() -> None:
    from resilient_session.config.load import integration

    source = {"integrations": {"crm": {"base_url": "https://api.example.com", "drift": "warn"}}}
    config = integration(source, "crm")
    assert config.drift == "warn"
    assert ResilientSession.from_integration(config).drift == "warn"
    assert integration({"integrations": {"x": {"base_url": "https://a.example"}}}, "x").drift == "raise"


@pytest.mark.parametrize("value", ["loud", 1, True])
def test_a_bad_drift_policy_is_refused_by_the_file_and_the_constructor_alike(value: object) -> None:
    from resilient_session.config.load import integration

    source = {"integrations": {"crm": {"base_url": "https://api.example.com", "drift": value}}}
    with pytest.raises(InvalidConfigError) as raised:
        integration(source, "crm")
    (problem,) = raised.value.problems
    assert problem.startswith('integrations.crm.drift: expected one of "raise", "warn", "ignore"')
    with pytest.raises((TypeError, ValueError)) as direct:
        ResilientSession(drift=value)  # type: ignore[arg-type]
    assert str(direct.value) == "drift" + problem.removeprefix("integrations.crm.drift")
    assert isinstance(direct.value, TypeError) == (not isinstance(value, str))
