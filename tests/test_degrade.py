"""The degrade policy, its failure classes, its keys, and how a degraded answer is reported."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
import responses

pytest.importorskip("requests_cache")

from resilient_session import CircuitBreaker, ResilientSession, registry
from resilient_session._degrade import classify
from resilient_session.errors import (
    APIConnectionError,
    APIReadTimeout,
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceededError,
    IncompleteBodyError,
    MalformedResponseError,
    RetryExhaustedError,
)
from resilient_session.observe import CallEvent
from resilient_session.policies import Degrade
from resilient_session.stores import MemoryStore, ResponseStore
from resilient_session.stores.responses import request_key

URL = "https://api.example.com/v1/users/1"


def _prepared(url: str = URL, **kwargs: Any) -> requests.PreparedRequest:
    return requests.Request("GET", url, **kwargs).prepare()


# -- the policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"max_stale": -1}, ValueError, "max_stale"),
        ({"max_stale": "ten"}, TypeError, "max_stale"),
        ({"on": {"circuit_open", "sunspots"}}, ValueError, "sunspots"),
        ({"failure_statuses": {700}}, ValueError, "failure_statuses"),
        ({"key_headers": "X-Tenant"}, TypeError, "key_headers"),
        ({"store": MemoryStore()}, TypeError, "store"),
        ({"routes": {"reports": False}}, ValueError, "routes"),
        ({"routes": {"/reports": 5}}, TypeError, "routes"),
    ],
)
def test_a_wrong_option_is_refused_with_its_name(
    changes: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        Degrade(**changes)


def test_session_refuses_what_is_not_a_policy() -> None:
    with pytest.raises(TypeError, match="degrade"):
        ResilientSession(degrade=True)  # type: ignore[arg-type]


def test_routes_pick_the_policy_of_a_path() -> None:
    reports = Degrade(max_stale=3600)
    policy = Degrade(routes={"/v1/reports": reports, "/v1/payments": False})
    assert policy.for_path("/v1/reports/9") is reports
    assert policy.for_path("/v1/payments/9") is None
    assert policy.for_path("/v1/users/9") is policy
    assert policy.new(max_stale=5).max_stale == 5


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (CircuitOpenError("open"), "circuit_open"),
        (BulkheadFullError("full"), "bulkhead_full"),
        (DeadlineExceededError("late"), "deadline"),
        (RetryExhaustedError("503 x3"), "status"),
        (APIReadTimeout("slow"), "timeout"),
        (requests.ConnectTimeout("slow"), "timeout"),
        (APIConnectionError("refused"), "connection"),
        (IncompleteBodyError("cut"), "connection"),
        (MalformedResponseError("big", code="body_too_large"), None),
        (requests.exceptions.InvalidURL("bad"), None),
    ],
)
def test_failures_are_classified(error: BaseException, reason: str | None) -> None:
    assert classify(error) == reason


def test_an_error_class_may_declare_its_failure() -> None:
    class QuotaSpent(requests.RequestException):
        degrade_reason = "quota"

    assert classify(QuotaSpent()) == "quota"


# -- keys ------------------------------------------------------------------------------------------


def test_keys_separate_credentials_and_never_hold_them() -> None:
    alice, _ = request_key(_prepared(headers={"Authorization": "Bearer alice-secret"}))
    bob, _ = request_key(_prepared(headers={"Authorization": "Bearer bob-secret"}))
    nobody, _ = request_key(_prepared())
    assert len({alice, bob, nobody}) == 3
    assert "alice-secret" not in alice
    again, _ = request_key(_prepared(headers={"Authorization": "Bearer alice-secret", "X-Request-ID": "1"}))
    assert again == alice  # headers that are no credential do not split the key


@pytest.mark.parametrize(
    ("one", "two"),
    [
        ({"headers": {"X-API-Key": "k1"}}, {"headers": {"X-API-Key": "k2"}}),
        ({"headers": {"Cookie": "session=a"}}, {"headers": {"Cookie": "session=b"}}),
        ({"params": {"api_key": "k1"}}, {"params": {"api_key": "k2"}}),
        ({"params": {"access_token": "t1"}}, {"params": {"access_token": "t2"}}),
    ],
)
def test_every_kind_of_credential_splits_the_key(one: dict[str, Any], two: dict[str, Any]) -> None:
    first, redact = request_key(_prepared(**one))
    second, _ = request_key(_prepared(**two))
    assert first != second
    assert not any(
        str(v) in first for v in [*one.get("headers", {}).values(), *one.get("params", {}).values()]
    )
    assert redact  # the credential is removed from what is stored


def test_a_key_secret_changes_every_key() -> None:
    request = _prepared(headers={"Authorization": "Bearer alice-secret"})
    assert request_key(request)[0] != request_key(request, secret=b"fleet-secret")[0]


def test_client_certificate_and_key_headers_split_the_key() -> None:
    request = _prepared()
    assert request_key(request, cert="/a.pem")[0] != request_key(request, cert="/b.pem")[0]
    one = _prepared(headers={"X-Tenant": "a"})
    two = _prepared(headers={"X-Tenant": "b"})
    assert request_key(one)[0] == request_key(two)[0]
    assert request_key(one, extra_headers=["X-Tenant"])[0] != request_key(two, extra_headers=["X-Tenant"])[0]


# -- the store fails open ----------------------------------------------------------------------------


def test_a_failing_backend_fails_open_and_is_skipped_for_the_cooldown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    class Broken:
        @property
        def responses(self) -> Any:
            calls.append(1)
            raise OSError("redis://:hunter2@db:6379 unreachable")

    store = ResponseStore(Broken(), cooldown=60)
    with caplog.at_level(logging.WARNING, logger="resilient_session"):
        assert store.get("k") is None
        assert store.get("k") is None
    assert calls == [1]
    assert "hunter2" not in caplog.text
    assert "OSError" in caplog.text


# -- reporting -----------------------------------------------------------------------------------------


@responses.activate
def test_a_degraded_answer_is_reported_in_events_and_the_log_line(caplog: pytest.LogCaptureFixture) -> None:
    responses.get(URL, json={"id": 1})
    session = ResilientSession(
        retry=0,
        breaker=CircuitBreaker(consecutive_failures=1, routes=False, store=MemoryStore()),
        degrade=Degrade(store=ResponseStore.memory()),
    )
    seen: list[CallEvent] = []
    session.events.on_response(seen.append)
    session.events.on_error(seen.append)
    session.get(URL)
    responses.replace(responses.GET, URL, status=503)
    with caplog.at_level(logging.INFO, logger="resilient_session"):
        answer = session.get(URL)
        again = session.get(URL)
    assert answer.json() == again.json() == {"id": 1}
    assert [e.kind for e in seen] == ["response", "response", "response"]
    first, second = seen[1], seen[2]
    assert first.outcome == second.outcome == "degraded"
    assert first.degraded is not None and first.degraded.reason == "status"
    assert second.degraded is not None and second.degraded.reason == "circuit_open"
    assert second.breaker_state == "open"
    lines = [r for r in caplog.records if getattr(r, "outcome", None) == "degraded"]
    assert len(lines) == 2
    assert "degraded (stale; reason=status" in lines[0].getMessage()
    assert getattr(lines[1], "degraded_reason", None) == "circuit_open"
    assert len(responses.calls) == 2  # the open circuit sent nothing


@responses.activate
def test_registered_integration_shares_its_policy() -> None:
    saved = registry.snapshot()
    try:
        policy = Degrade(store=ResponseStore.memory())
        registry.register("catalog", base_url="https://api.example.com/v1", degrade=policy)
        assert ResilientSession(integration="catalog").degrade is policy
        assert registry.session("catalog").degrade is policy
    finally:
        registry.restore(saved)


def test_a_session_with_a_policy_pickles_with_an_equal_store(tmp_path: Any) -> None:
    import pickle

    path = str(tmp_path / "d.sqlite")
    session = ResilientSession(degrade=Degrade(max_stale=7, store=ResponseStore.sqlite(path, timeout=0.2)))
    copy = pickle.loads(pickle.dumps(session))
    assert copy.degrade is not None and copy.degrade.max_stale == 7
    assert copy.degrade.store is not None and copy.degrade.store.timeout == 0.2
    assert str(copy.degrade.store.backend.db_path) == path
    memory = pickle.loads(pickle.dumps(ResponseStore.memory(key_secret=b"s")))
    assert memory._key_secret == b"s"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ResponseStore(object()))


@responses.activate
def test_a_degraded_answer_marks_the_call_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    responses.get(URL, json={"id": 1})
    session = ResilientSession(retry=0, tracing=provider, degrade=Degrade(store=ResponseStore.memory()))
    session.get(URL)
    responses.replace(responses.GET, URL, status=503)
    exporter.clear()
    assert session.get(URL).json() == {"id": 1}
    (parent,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    attributes = dict(parent.attributes or {})
    assert attributes["resilient_session.degraded"] == "stale"
    assert attributes["resilient_session.degraded.reason"] == "status"
    assert 0 <= float(attributes["resilient_session.degraded.age"]) < 5  # type: ignore[arg-type]
    assert attributes["http.response.status_code"] == 200


@responses.activate
@pytest.mark.parametrize(
    ("fallback", "body", "content_type"),
    [
        (b"\x00raw", b"\x00raw", None),
        ("plain text", b"plain text", "text/plain; charset=utf-8"),
        ({"items": []}, b'{"items": []}', "application/json"),
    ],
)
def test_each_kind_of_fallback_value(fallback: Any, body: bytes, content_type: str | None) -> None:
    responses.get(URL, status=503)
    session = ResilientSession(
        retry=0, breaker=False, degrade=Degrade(store=ResponseStore.memory(), fallback=fallback)
    )
    answer = session.get(URL)
    assert (answer.status_code, answer.content) == (200, body)
    assert answer.headers.get("Content-Type") == content_type
    assert answer.headers["Resilient-Degraded"] == "fallback; reason=status"


@responses.activate
def test_a_fallback_that_raises_leaves_the_failure_as_it_was(caplog: pytest.LogCaptureFixture) -> None:
    responses.get(URL, status=503)

    def broken(request: requests.PreparedRequest) -> Any:
        raise RuntimeError("no")

    session = ResilientSession(
        retry=0, breaker=False, degrade=Degrade(store=ResponseStore.memory(), fallback=broken)
    )
    with caplog.at_level(logging.WARNING, logger="resilient_session"):
        assert session.get(URL).status_code == 503
    assert "fallback failed (RuntimeError)" in caplog.text


@responses.activate
def test_head_is_kept_and_served_apart_from_get() -> None:
    responses.get(URL, json={"id": 1})
    responses.head(URL, headers={"X-Total": "7"})
    store = ResponseStore.memory()
    session = ResilientSession(retry=0, breaker=False, degrade=Degrade(store=store))
    session.get(URL)
    session.head(URL)
    responses.replace(responses.GET, URL, status=503)
    responses.replace(responses.HEAD, URL, status=503)
    assert session.head(URL).headers["X-Total"] == "7"
    assert session.get(URL).json() == {"id": 1}
    assert len(list(store.backend.responses.keys())) == 2


@responses.activate
def test_streamed_and_oversized_answers_are_not_kept() -> None:
    responses.get(URL, body=b"x" * 100)
    store = ResponseStore.memory()
    session = ResilientSession(retry=0, breaker=False, degrade=Degrade(store=store, max_body=50))
    session.get(URL)
    session.get(URL, stream=True).close()
    assert list(store.backend.responses.keys()) == []
    session.max_response_size = 200
    session.degrade = Degrade(store=store, max_body=1000)
    session.get(URL)
    assert len(list(store.backend.responses.keys())) == 1


@responses.activate
def test_a_policy_without_a_store_uses_one_sqlite_file_in_the_user_cache_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from resilient_session import _degrade

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(_degrade, "_default_store", None)
    responses.get(URL, json={"id": 1})
    session = ResilientSession(retry=0, breaker=False, degrade=Degrade())
    session.get(URL)
    responses.replace(responses.GET, URL, status=503)
    assert session.get(URL).json() == {"id": 1}
    store = _degrade.default_store()
    assert str(store.backend.db_path).startswith(str(tmp_path))
    assert str(store.backend.db_path).endswith("resilient_session_degrade.sqlite")
    store.close()


# -- the memory store's bounds ---------------------------------------------------------------------


def _keep_all(store: ResponseStore, paths: list[str], body: bytes = b'{"id": 1}') -> ResilientSession:
    session = ResilientSession(retry=0, breaker=False, degrade=Degrade(store=store))
    for path in paths:
        responses.get(f"https://api.example.com/{path}", body=body)
        session.get(f"https://api.example.com/{path}")
    return session


def _served(session: ResilientSession, path: str) -> bool:
    url = f"https://api.example.com/{path}"
    responses.replace(responses.GET, url, status=503)
    answer = session.get(url)
    return answer.status_code == 200 and answer.normalized.degraded is not None  # type: ignore[attr-defined]


def test_memory_store_bounds_are_checked() -> None:
    for bad in ({"max_entries": 0}, {"max_bytes": -1}, {"max_entries": 1.5}, {"max_bytes": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ResponseStore.memory(**bad)


@responses.activate
def test_memory_store_keeps_at_most_max_entries_least_recently_used_out_first() -> None:
    store = ResponseStore.memory(max_entries=3)
    session = _keep_all(store, ["a", "b", "c"])
    assert _served(session, "a")  # read: "a" is now the most recently used
    _keep_all(store, ["d"])
    assert len(list(store.backend.responses.keys())) == 3
    assert not _served(session, "b")  # the least recently used went out
    assert [_served(session, path) for path in ("a", "c", "d")] == [True, True, True]


@responses.activate
def test_memory_store_keeps_at_most_max_bytes_of_bodies() -> None:
    store = ResponseStore.memory(max_bytes=250)
    session = _keep_all(store, ["a", "b", "c"], body=b"x" * 100)
    assert len(list(store.backend.responses.keys())) == 2  # 300 bytes do not fit in 250
    assert not _served(session, "a")
    assert _served(session, "c")
    # A body larger than the whole store is not kept, and the older answer it replaces goes too.
    responses.replace(responses.GET, "https://api.example.com/c", body=b"y" * 300)
    session.get("https://api.example.com/c")
    assert not _served(session, "c")
    assert _served(session, "b")


def test_memory_store_defaults_are_documented() -> None:
    from resilient_session.stores import responses as module

    doc = ResponseStore.memory.__doc__ or ""
    assert f"{module.DEFAULT_MEMORY_ENTRIES:,}" in doc
    assert f"{module.DEFAULT_MEMORY_BYTES // 1024 // 1024} MiB" in doc
