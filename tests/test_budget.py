"""Retry budget: token accounting, refunds, and the veto it puts on retries inside a session."""

from __future__ import annotations

import dataclasses
import logging
import threading

import pytest
import responses

from resilient_session import CircuitBreaker, ResilientSession, RetryBudget
from resilient_session.stores import MemoryStore

HOST = "https://api.example.com:443"
URL = "https://api.example.com/v1/items"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_defaults_are_aws_standard_mode() -> None:
    budget = RetryBudget()
    assert (budget.capacity, budget.retry_cost, budget.timeout_retry_cost, budget.success_refund) == (
        500,
        5,
        10,
        1,
    )
    assert budget.available(HOST) == 500


def test_a_full_bucket_pays_for_exactly_capacity_over_cost_retries() -> None:
    budget = RetryBudget()
    granted = sum(budget.try_retry(HOST) for _ in range(150))
    assert granted == 100
    assert budget.available(HOST) == 0


def test_timeouts_cost_more() -> None:
    budget = RetryBudget(capacity=30)
    assert budget.try_retry(HOST, timeout=True)
    assert budget.available(HOST) == 20
    assert budget.try_retry(HOST)
    assert budget.available(HOST) == 15


def test_a_short_bucket_takes_nothing() -> None:
    budget = RetryBudget(capacity=12)
    assert budget.try_retry(HOST) and budget.try_retry(HOST)
    assert not budget.try_retry(HOST)
    assert budget.available(HOST) == 2
    assert not budget.try_retry(HOST, timeout=True)
    assert budget.available(HOST) == 2


def test_success_refunds_the_last_retry_or_one_token() -> None:
    budget = RetryBudget(capacity=100)
    for _ in range(4):
        budget.try_retry(HOST, timeout=True)
    assert budget.available(HOST) == 60
    budget.record_success(HOST, last_retry_cost=10)
    assert budget.available(HOST) == 70
    budget.record_success(HOST)
    assert budget.available(HOST) == 71


def test_refunds_never_overfill_and_a_full_bucket_stores_nothing() -> None:
    store = MemoryStore()
    budget = RetryBudget(capacity=10, store=store)
    budget.try_retry(HOST)
    assert len(store) == 1
    for _ in range(20):
        budget.record_success(HOST)
    assert budget.available(HOST) == 10
    assert len(store) == 0


def test_buckets_are_per_host_unless_named() -> None:
    budget = RetryBudget(capacity=5)
    assert budget.try_retry(budget.key_for("https://a.example.com/x"))
    assert not budget.try_retry(budget.key_for("https://a.example.com:443/y"))
    assert budget.try_retry(budget.key_for("https://b.example.com/"))
    shared = budget.new(name="crm")
    assert shared.key_for("https://a.example.com/") == shared.key_for("https://b.example.com/") == "crm"


def test_an_untouched_bucket_fills_up_after_the_store_ttl() -> None:
    clock = Clock()
    budget = RetryBudget(capacity=10, store=MemoryStore(clock=clock, ttl=60))
    budget.try_retry(HOST)
    clock.now = 59.0
    assert budget.available(HOST) == 5
    clock.now = 59.0 + 60.0
    assert budget.available(HOST) == 10


def test_a_denied_retry_is_logged_at_most_every_ten_seconds(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    budget = RetryBudget(capacity=5, store=MemoryStore(clock=clock))
    budget.try_retry(HOST)
    with caplog.at_level(logging.WARNING, logger="resilient_session"):
        for _ in range(50):
            budget.try_retry(HOST)
        clock.now = 10.0
        budget.try_retry(HOST)
    messages = [r.getMessage() for r in caplog.records if "retry budget" in r.getMessage()]
    assert len(messages) == 2
    assert (
        messages[0]
        == f"retry budget for {HOST} exhausted (0 of 5 tokens left, a retry costs 5): not retrying"
    )


def test_the_policy_is_immutable_and_validated() -> None:
    budget = RetryBudget()
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.capacity = 1  # type: ignore[misc]
    assert budget.new(capacity=50).store is budget.store
    with pytest.raises(ValueError):
        RetryBudget(capacity=0)
    with pytest.raises(ValueError):
        RetryBudget(retry_cost=-1)


def test_no_token_is_lost_or_invented_under_concurrency() -> None:
    budget = RetryBudget(capacity=1000, retry_cost=1)
    granted = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        mine = 0
        for _ in range(250):
            mine += budget.try_retry(HOST)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 1000
    assert budget.available(HOST) == 0


def test_gate_pays_per_retry_and_refunds_its_last_cost() -> None:
    budget = RetryBudget(capacity=100)
    gate = budget.gate(HOST)
    assert gate(None, "status 503")
    assert gate(None, "read timeout")
    assert budget.available(HOST) == 85
    assert gate.last_cost == 10
    gate.record_success()
    assert budget.available(HOST) == 95


# -- through the session ------------------------------------------------------------------------------


@responses.activate
def test_an_empty_budget_stops_retries_but_first_attempts_still_go() -> None:
    budget = RetryBudget(capacity=10)
    session = ResilientSession(budget=budget, retry=3)
    responses.add(responses.GET, URL, status=503)
    assert session.get(URL).status_code == 503
    assert len(responses.calls) == 3  # the first attempt, then two retries of 5 tokens
    assert session.get(URL).status_code == 503
    assert len(responses.calls) == 4  # nothing left to retry with; the first attempt went
    assert budget.available(HOST) == 0


@responses.activate
def test_a_success_after_a_retry_returns_its_cost() -> None:
    budget = RetryBudget(capacity=100)
    session = ResilientSession(budget=budget, retry=3)
    responses.add(responses.GET, URL, status=503)
    responses.add(responses.GET, URL, status=200)
    assert session.get(URL).status_code == 200
    assert budget.available(HOST) == 100


@responses.activate
def test_429_retries_spend_the_budget_not_the_breaker() -> None:
    budget = RetryBudget(capacity=15)
    breaker = CircuitBreaker(consecutive_failures=1)
    session = ResilientSession(budget=budget, breaker=breaker, retry=3)
    responses.add(responses.GET, URL, status=429)
    assert session.get(URL).status_code == 429
    assert len(responses.calls) == 4
    assert budget.available(HOST) == 0
    assert breaker.state(HOST).failures == 0


@responses.activate
def test_every_session_has_its_own_budget_by_default() -> None:
    first, second = ResilientSession(), ResilientSession()
    assert isinstance(first.budget, RetryBudget)
    assert first.budget is not second.budget
    assert first.get_adapter("https://x").policies(first)[1] is first.budget  # type: ignore[attr-defined]
    assert first.get_adapter("http://x").policies(first)[1] is first.budget  # type: ignore[attr-defined]
    assert ResilientSession(budget=False).get_adapter("https://x").budget is None  # type: ignore[attr-defined]
