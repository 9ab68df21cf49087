"""Rate limits against a real server on 127.0.0.1 that records when each request arrived."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from resilient_session import ResilientSession, RetryPolicy
from resilient_session.errors import QuotaExceededError
from resilient_session.policies import RateLimit
from resilient_session.stores import MemoryStore, RedisStore
from tests.test_redis_store import RedisServer

from .upstream import Reply, Upstream


def _arrivals(upstream: Upstream, path: str) -> list[float]:
    with upstream.lock:
        return [call.at for call in upstream.calls[path]]


def _most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    start = 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- refusals first ---------------------------------------------------------------------------------


def test_a_wait_that_does_not_fit_the_deadline_raises_at_once_and_sends_nothing(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply())
    session = ResilientSession(rate_limit=RateLimit(calls=1, per=2, store=MemoryStore()), deadline=1.0)
    session.get(url)
    started = time.perf_counter()
    with pytest.raises(QuotaExceededError) as caught:
        session.get(url)
    took = time.perf_counter() - started
    assert took < 0.010
    assert upstream.count("/q") == 1
    error = caught.value
    assert isinstance(error, requests.RequestException)
    assert error.retry_after == pytest.approx(2.0, abs=0.1)
    assert error.rate == pytest.approx(0.5)
    assert error.key == f"http://127.0.0.1:{upstream.port}"
    assert "no slot" in str(error) and "30/min" in str(error)


def test_an_upstream_with_nothing_left_holds_the_next_call_back_without_sending(upstream: Upstream) -> None:
    url = upstream.script(
        "/q", Reply(headers={"RateLimit-Policy": '"h";q=100;w=3600', "RateLimit": '"h";r=0;t=30'})
    )
    session = ResilientSession(rate_limit=RateLimit(store=MemoryStore()), deadline=5.0)
    assert session.get(url).status_code == 200
    started = time.perf_counter()
    with pytest.raises(QuotaExceededError) as caught:
        session.get(url)
    assert time.perf_counter() - started < 0.010
    assert upstream.count("/q") == 1
    assert caught.value.retry_after == pytest.approx(30, abs=0.5)
    assert "holds every call back" in str(caught.value)


def test_a_retry_without_a_slot_in_time_ends_the_call_with_the_answer_it_had(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply(status=429, headers={"Retry-After": "0.05"}), Reply())
    policy = RateLimit(calls=1, per=5, store=MemoryStore(), adaptive=False)
    session = ResilientSession(rate_limit=policy, deadline=2.0, retry=RetryPolicy(3, backoff_factor=0))
    response = session.get(url)
    assert response.status_code == 429  # the retry's slot was 5 s away: not retried
    assert upstream.count("/q") == 1


# -- waiting ----------------------------------------------------------------------------------------


def test_calls_from_many_threads_are_spaced_at_the_rate(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply())
    policy = RateLimit(calls=20, store=MemoryStore())
    errors: list[BaseException] = []

    def worker() -> None:
        session = ResilientSession(rate_limit=policy)
        try:
            for _ in range(3):
                session.get(url)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    assert not errors
    times = _arrivals(upstream, "/q")
    assert len(times) == 15
    assert took >= 14 / 20 - 0.01
    # Evenly spaced: never more than 5 (+1 for scheduling jitter) within any quarter second.
    assert _most_in_any_window(times, 0.25) <= 6


def test_waiting_is_first_come_first_served(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply())
    policy = RateLimit(calls=5, store=MemoryStore())
    ResilientSession(rate_limit=policy).get(url)  # the schedule is now busy for 0.2 s

    def worker(n: int) -> None:
        ResilientSession(rate_limit=policy).get(url, headers={"X-N": str(n)})

    threads = []
    for n in range(5):
        thread = threading.Thread(target=worker, args=(n,))
        thread.start()
        threads.append(thread)
        time.sleep(0.02)  # each arrives after the previous one, long before its slot
    for thread in threads:
        thread.join()
    with upstream.lock:
        order = [call.headers.get("X-N") for call in upstream.calls["/q"][1:]]
    assert order == ["0", "1", "2", "3", "4"]


def test_a_learned_quota_paces_every_session_of_the_process(upstream: Upstream) -> None:
    url = upstream.script(
        "/q", Reply(headers={"RateLimit-Policy": '"s";q=10;w=1', "RateLimit": '"s";r=9;t=1'})
    )
    policy = RateLimit(store=MemoryStore())
    ResilientSession(rate_limit=policy).get(url)
    started = time.perf_counter()
    for _ in range(6):
        ResilientSession(rate_limit=policy).get(url)  # a new session per call shares the limit
    took = time.perf_counter() - started
    # Learned 10/s at 95 % from the first answer: the six calls after it go 1/9.5 s apart.
    assert took >= 5 / 9.5 - 0.02
    assert _most_in_any_window(_arrivals(upstream, "/q")[1:], 0.2) <= 2


def test_retry_after_on_a_429_holds_back_the_calls_of_other_sessions(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply(status=429, headers={"Retry-After": "1"}), Reply())
    other = upstream.script("/other", Reply())
    policy = RateLimit(store=MemoryStore())
    first = ResilientSession(rate_limit=policy, retry=RetryPolicy(2, backoff_factor=0))
    thread = threading.Thread(target=first.get, args=(url,))
    thread.start()
    while upstream.count("/q") == 0:
        time.sleep(0.005)
    time.sleep(0.1)  # the 429 has been read and learned
    started = time.perf_counter()
    ResilientSession(rate_limit=policy).get(other)
    waited = time.perf_counter() - started
    thread.join()
    assert waited >= 0.75
    retried = _arrivals(upstream, "/q")
    assert len(retried) == 2 and retried[1] - retried[0] >= 0.95


def test_a_call_waiting_for_its_slot_does_not_send_into_a_hold_that_began_meanwhile(
    upstream: Upstream,
) -> None:
    url = upstream.script("/q", Reply(status=429, headers={"Retry-After": "1"}, delay=0.1), Reply())
    policy = RateLimit(calls=5, store=MemoryStore(), adaptive=False)
    first = threading.Thread(target=ResilientSession(rate_limit=policy, retry=False).get, args=(url,))
    first.start()
    time.sleep(0.02)  # the first call is on the wire; the second's slot is 0.2 s after it
    ResilientSession(rate_limit=policy, retry=False).get(url)
    first.join()
    sent = _arrivals(upstream, "/q")
    assert len(sent) == 2
    # The 429 (answered at 0.1 s) held every call for 1 s: the second went after it, not at 0.2 s.
    assert sent[1] - sent[0] >= 1.0


# -- shared by processes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def _redis_worker(redis_url: str, prefix: str, url: str, start: Any, results: Any) -> None:
    policy = RateLimit(calls=20, name="shared", store=RedisStore(redis_url, prefix=prefix))
    session = ResilientSession(rate_limit=policy)
    start.wait()
    statuses = [session.get(url).status_code for _ in range(15)]
    results.put(statuses)


def test_two_processes_sharing_one_redis_stay_under_a_static_quota_together(
    upstream: Upstream, redis_server: RedisServer
) -> None:
    url = upstream.script("/q", Reply())
    prefix = f"quota-{uuid.uuid4().hex}"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(target=_redis_worker, args=(redis_server.url, prefix, url, start, results))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    collected = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert all(status == 200 for statuses in collected for status in statuses)
    times = _arrivals(upstream, "/q")
    assert len(times) == 30
    # 20 calls/s between them: 30 calls span at least 29/20 s, and no second holds more than 20 (+1).
    assert max(times) - min(times) >= 29 / 20 - 0.05
    assert _most_in_any_window(times, 1.0) <= 21


def test_an_unreachable_redis_fails_open_to_the_limit_of_the_process(
    upstream: Upstream, closed_port: int
) -> None:
    url = upstream.script("/q", Reply())
    store = RedisStore(f"redis://127.0.0.1:{closed_port}/0", op_timeout=0.05)
    session = ResilientSession(rate_limit=RateLimit(calls=10, store=store))
    started = time.perf_counter()
    for _ in range(5):
        assert session.get(url).status_code == 200
    took = time.perf_counter() - started
    assert store.degraded
    assert took >= 4 / 10 - 0.01
    assert _most_in_any_window(_arrivals(upstream, "/q"), 0.1) <= 2


# -- visible ------------------------------------------------------------------------------------------


QUOTA_HEADERS = {"RateLimit-Policy": '"m";q=100;w=60', "RateLimit": '"m";r=41;t=17'}


def test_events_logs_spans_and_normalized_show_the_last_known_quota(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    url = upstream.script("/q", Reply(headers=QUOTA_HEADERS))
    session = ResilientSession(rate_limit=RateLimit(store=MemoryStore()), tracing=provider, integration="crm")
    seen: list[Any] = []
    session.events.on_response(seen.append)
    with caplog.at_level(logging.INFO, logger="resilient_session"):
        response = session.get(url)
    quota = response.normalized.quota  # type: ignore[attr-defined]
    assert quota is not None and (quota.limit, quota.window, quota.remaining, quota.reset) == (
        100,
        60,
        41,
        17,
    )
    event = seen[0]
    assert event.quota == quota and event.quota_wait == 0
    line = next(r for r in caplog.records if r.getMessage().startswith("GET "))
    assert line.quota_remaining == 41 and line.quota_wait_ms == 0  # type: ignore[attr-defined]
    call_span = next(s for s in exporter.get_finished_spans() if s.name == "GET crm")
    attributes = dict(call_span.attributes or {})
    assert attributes["resilient_session.quota.limit"] == 100
    assert attributes["resilient_session.quota.remaining"] == 41
    assert attributes["resilient_session.quota.reset"] == 17
    assert attributes["resilient_session.quota.wait_ms"] == 0


def test_the_error_event_of_a_refused_call_says_nothing_was_sent(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply())
    session = ResilientSession(rate_limit=RateLimit(calls=1, per=10, store=MemoryStore()), deadline=0.5)
    errors: list[Any] = []
    session.events.on_error(errors.append)
    session.get(url)
    with pytest.raises(QuotaExceededError):
        session.get(url)
    assert upstream.count("/q") == 1
    assert isinstance(errors[0].error, QuotaExceededError) and errors[0].status is None
