"""The integrations registry: definitions, look-up by URL, sessions sharing one breaker and one budget."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from resilient_session import (
    BearerAuth,
    Bulkhead,
    CircuitBreaker,
    CircuitOpenError,
    ConfigurationError,
    InvalidConfigError,
    ResilientSession,
    RetryBudget,
    RetryPolicy,
    registry,
)
from resilient_session.stores import MemoryStore, default_store

BASE = "https://api.example.com/v1"


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "a/b", "ünïcode", None, 3])
def test_an_invalid_name_is_refused(name: object) -> None:
    with pytest.raises(ConfigurationError, match="letters, digits"):
        registry.register(name, base_url=BASE)  # type: ignore[arg-type]
    assert registry.registered() == {}


def test_an_unknown_option_is_refused_naming_it() -> None:
    with pytest.raises(TypeError, match=r"unknown option.*timout"):
        registry.register("x", base_url=BASE, timout=3)
    assert "x" not in registry.registered()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"deadline": -1}, ValueError),
        ({"deadline": "5"}, TypeError),
        ({"breaker": "yes"}, TypeError),
        ({"budget": 3}, TypeError),
        ({"max_response_size": -1}, ValueError),
        ({"headers": ["X-A", "1"]}, TypeError),
    ],
)
def test_an_option_a_session_would_refuse_is_refused_at_registration(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        registry.register("x", base_url=BASE, **options)
    assert "x" not in registry.registered()


@pytest.mark.parametrize("url", ["ftp://files.example.com", "api.example.com", "https://", "http://h:99999"])
def test_an_origin_that_is_not_an_http_url_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        registry.register("x", base_url=url)
    with pytest.raises(ConfigurationError):
        registry.register("x", origins=[url])
    assert registry.registered() == {}


def test_registering_a_name_twice_is_an_error_unless_replacing() -> None:
    first = registry.register("x", base_url=BASE)
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register("x", base_url="https://other.example.com")
    assert registry.get("x") is first
    second = registry.register("x", base_url="https://other.example.com", replace=True)
    assert registry.get("x") is second
    assert registry.lookup(BASE + "/users") is None


def test_get_of_an_unknown_name_lists_the_registered_ones() -> None:
    registry.register("stripe", base_url=BASE)
    with pytest.raises(ConfigurationError, match=r"no integration 'strpe'.*registered: stripe"):
        registry.get("strpe")
    assert registry.find("strpe") is None
    with pytest.raises(ConfigurationError):
        registry.session("strpe")


def test_an_unregistered_name_stays_a_label_as_before() -> None:
    session = ResilientSession(integration="not-registered", timeout=4)
    assert session.integration == "not-registered"
    assert session.base_url is None and session.timeout == 4
    assert session.breaker is not None and session.breaker.name is None


# -- definitions -----------------------------------------------------------------------------------


def test_policies_are_named_after_the_integration_and_keep_their_store() -> None:
    store = MemoryStore()
    item = registry.register(
        "stripe",
        base_url=BASE,
        breaker=CircuitBreaker(open_wait=9, store=store),
        budget=RetryBudget(capacity=50),
    )
    assert item.breaker is not None and item.budget is not None
    assert (item.breaker.name, item.breaker.open_wait, item.breaker.store) == ("stripe", 9, store)
    assert (item.budget.name, item.budget.capacity, item.budget.store) == ("stripe", 50, default_store())
    named = registry.register("other", base_url=BASE, breaker=CircuitBreaker(name="mine"))
    assert named.breaker is not None and named.breaker.name == "mine"
    off = registry.register("off", base_url=BASE, breaker=False, budget=False)
    assert off.breaker is None and off.budget is None


def test_the_integration_is_immutable_and_its_repr_shows_no_credentials() -> None:
    item = registry.register("x", base_url="https://user:hunter2@api.example.com/v1?api_key=s3cr3t")
    with pytest.raises(AttributeError):
        item.name = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        item.options["timeout"] = 3  # type: ignore[index]
    text = repr(item)
    assert "hunter2" not in text and "s3cr3t" not in text and "api.example.com" in text


def test_origins_are_normalised_and_deduplicated() -> None:
    item = registry.register(
        "x",
        base_url="HTTPS://API.example.com/v1",
        origins=["https://api.example.com:443", "http://files.example.com"],
    )
    assert item.origins == ("https://api.example.com:443", "http://files.example.com:80")
    assert registry.register("y", origins="https://a.example.com").origins == ("https://a.example.com:443",)


def test_lookup_matches_by_origin_and_the_longest_base_path() -> None:
    v1 = registry.register("v1", base_url="https://api.example.com/v1")
    billing = registry.register("billing", base_url="https://api.example.com/v1/billing/")
    files = registry.register(
        "files", base_url="https://api.example.com/v1", origins=["https://files.example.com"]
    )
    assert registry.lookup("https://api.example.com/v1/users?x=1") is v1  # first registered of two equals
    assert registry.lookup("https://api.example.com/v1/billing/invoices") is billing
    assert registry.lookup("https://api.example.com/v1/billing") is billing
    assert registry.lookup("https://api.example.com/v1/billingx") is v1
    assert registry.lookup("https://api.example.com/v2/users") is None
    assert registry.lookup("https://API.example.com:443/v1/users") is v1
    assert registry.lookup("https://files.example.com/anything") is files
    assert registry.lookup("http://api.example.com/v1/users") is None  # another origin
    assert files.serves("https://files.example.com/x") and not files.serves("https://api.example.com/v2")
    registry.unregister("v1")
    assert registry.lookup("https://api.example.com/v1/users") is files
    assert registry.unregister("v1") is None


def test_snapshot_and_restore_put_back_the_registrations() -> None:
    kept = registry.register("kept", base_url=BASE)
    saved = registry.snapshot()
    registry.register("added", base_url=BASE)
    registry.register("kept", base_url="https://other.example.com", replace=True)
    registry.restore(saved)
    assert dict(registry.registered()) == {"kept": kept}
    registry.reset()
    assert registry.registered() == {}


def test_concurrent_registrations_are_all_kept() -> None:
    start = threading.Barrier(8)

    def register(index: int) -> None:
        start.wait()
        for n in range(25):
            registry.register(f"i{index}-{n}", base_url=f"https://h{index}.example.com/{n}")

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(registry.registered()) == 200
    assert registry.lookup("https://h3.example.com/7/x") is registry.get("i3-7")


# -- sessions --------------------------------------------------------------------------------------


def test_a_session_of_the_integration_takes_its_options() -> None:
    auth = BearerAuth("tok")
    item = registry.register(
        "stripe",
        base_url=BASE,
        timeout=4,
        retry=RetryPolicy(total=1),
        deadline=9,
        auth=auth,
        raise_for_status=True,
        bulkhead=Bulkhead(max_concurrent=3),
        headers={"Stripe-Version": "2024-01-01", "Accept": "application/json"},
    )
    session = ResilientSession(integration="stripe")
    assert session.headers["Accept"] == "application/json"  # replaces requests' default
    assert session.base_url == BASE and session.timeout == 4 and session.deadline == 9
    assert session.retry.total == 1 and session.auth is auth and session.raise_for_status is True
    assert session.breaker is item.breaker and session.budget is item.budget
    assert session.bulkhead is not None and session.bulkhead.max_concurrent == 3
    assert session.headers["Stripe-Version"] == "2024-01-01"
    assert session.integration == "stripe"
    made = registry.session("stripe", timeout=2)
    assert made.timeout == 2 and made.breaker is item.breaker


def test_options_given_to_the_session_win_over_the_integrations() -> None:
    registry.register("stripe", base_url=BASE, timeout=4, headers={"X-A": "integration"})
    own = CircuitBreaker(consecutive_failures=1)
    session = ResilientSession(
        integration="stripe", base_url="https://mock.example.com", timeout=7, breaker=own
    )
    session.headers["X-A"] = "mine"
    assert (session.base_url, session.timeout, session.breaker) == ("https://mock.example.com", 7, own)
    assert ResilientSession(integration="stripe", budget=False).budget is None


@responses.activate
def test_sessions_made_per_call_share_the_integrations_circuit() -> None:
    responses.add(responses.POST, BASE + "/charges", status=503)
    registry.register("stripe", base_url=BASE, retry=False, breaker=CircuitBreaker(consecutive_failures=3))

    def charge() -> int:
        with ResilientSession(integration="stripe") as session:
            return session.post("/charges", json={}).status_code

    assert [charge() for _ in range(3)] == [503] * 3
    with pytest.raises(CircuitOpenError) as caught:
        charge()
    assert caught.value.host.startswith("stripe")
    assert len(responses.calls) == 3


@responses.activate
def test_sessions_made_per_call_share_the_integrations_retry_budget() -> None:
    responses.add(responses.GET, BASE + "/users", status=503)
    # Two retries per call at 5 tokens each; 20 tokens pay for two calls' retries, then none.
    registry.register(
        "stripe",
        base_url=BASE,
        retry=RetryPolicy(total=2, backoff_factor=0, status_forcelist=[503]),
        breaker=False,
        budget=RetryBudget(capacity=20),
    )
    for _ in range(4):
        with ResilientSession(integration="stripe") as session:
            assert session.get("/users").status_code == 503
    assert len(responses.calls) == 3 + 3 + 1 + 1


def test_a_pickled_session_of_an_integration_shares_its_state_again() -> None:
    item = registry.register("stripe", base_url=BASE)
    session = ResilientSession(integration="stripe")
    copy = pickle.loads(pickle.dumps(session))
    assert copy.breaker == item.breaker and copy.breaker is not None
    assert copy.breaker.store is default_store()


# -- the integrations file ------------------------------------------------------------------------


def test_register_config_registers_every_integration_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_KEY", "sk_live_x")
    path = tmp_path / "integrations.toml"
    path.write_text(
        """
        [integrations.stripe]
        base_url = "https://api.stripe.com/v1"
        timeout = 4
        breaker = { consecutive_failures = 3 }
        auth = { type = "bearer", token_env = "STRIPE_KEY" }
        headers = { Stripe-Version = "2024-01-01" }

        [integrations.github]
        base_url = "https://api.github.com"
        budget = false
        """
    )
    done = registry.register_config(path)
    assert sorted(done) == ["github", "stripe"]
    stripe = registry.get("stripe")
    assert stripe.breaker is not None and stripe.breaker.consecutive_failures == 3
    assert stripe.breaker.name == "stripe" and stripe.headers == {"Stripe-Version": "2024-01-01"}
    assert registry.get("github").budget is None
    session = ResilientSession(integration="stripe")
    prepared = session.prepare_request(requests.Request("GET", "/charges"))
    assert prepared.url == "https://api.stripe.com/v1/charges"
    assert prepared.headers["Authorization"] == "Bearer sk_live_x"
    assert registry.lookup("https://api.github.com/repos") is registry.get("github")
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register_config(path, ["github"])
    assert registry.register_config(path, ["github"], replace=True)["github"] is registry.get("github")
    with pytest.raises(ConfigurationError, match="no integration 'gitlab'"):
        registry.register_config(path, ["gitlab"])


def test_register_config_registers_nothing_from_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "integrations.toml"
    path.write_text('[integrations.a]\nbase_url = "https://a.example.com"\n[integrations.b]\ntimeout = 3\n')
    with pytest.raises(InvalidConfigError):
        registry.register_config(path)
    assert registry.registered() == {}
