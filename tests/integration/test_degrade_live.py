"""Graceful degradation against a real server on 127.0.0.1: what is served in place of a failure, and
what never is."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

pytest.importorskip("requests_cache")

from resilient_session import CircuitBreaker, CircuitOpenError, ResilientSession, ServerError
from resilient_session.errors import APIConnectionError
from resilient_session.normalization import NormalizedResponse
from resilient_session.policies import Degrade, Degraded
from resilient_session.stores import MemoryStore, ResponseStore

from .upstream import Reply, Upstream


def _degraded(response: requests.Response) -> Degraded | None:
    """What the caller reads: ``response.normalized.degraded``."""
    view: NormalizedResponse = response.normalized  # type: ignore[attr-defined]
    return view.degraded


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


def _session(upstream: Upstream, policy: Degrade | None = None, **kwargs: Any) -> ResilientSession:
    breaker = CircuitBreaker(consecutive_failures=1, open_wait=30, routes=False, store=MemoryStore())
    options: dict[str, Any] = {"base_url": upstream.url, "retry": 0, "breaker": breaker, "timeout": 2}
    options.update(kwargs)
    return ResilientSession(degrade=policy or Degrade(store=ResponseStore.memory()), **options)


def _open_circuit(session: ResilientSession, upstream: Upstream, path: str) -> None:
    """One failing call to *path* opens the circuit (the breaker opens after one failure)."""
    upstream.script(path, Reply(status=503, body=b"down"))
    assert session.get(path, allow_stale=False).status_code == 503
    with pytest.raises(CircuitOpenError):
        session.get(path, allow_stale=False)


# -- failures first ----------------------------------------------------------------------------------


def test_open_circuit_serves_stale_without_a_request_reaching_the_server(upstream: Upstream) -> None:
    upstream.script("/users/1", Reply(body=b'{"id": 1, "name": "Ada"}'))
    session = _session(upstream)
    fresh = session.get("/users/1")
    assert fresh.json() == {"id": 1, "name": "Ada"}
    assert _degraded(fresh) is None
    assert "Resilient-Degraded" not in fresh.headers
    _open_circuit(session, upstream, "/other")
    upstream.script("/users/1", Reply(body=b'{"id": 1, "name": "CHANGED"}'))
    before = upstream.count("/users/1")

    started = time.monotonic()
    stale = session.get("/users/1")
    took = time.monotonic() - started

    assert upstream.count("/users/1") == before == 0  # script() reset the count: nothing arrived since
    assert stale.status_code == 200
    assert stale.json() == {"id": 1, "name": "Ada"}
    degraded = _degraded(stale)
    assert degraded is not None
    assert (degraded.kind, degraded.reason) == ("stale", "circuit_open")
    assert degraded.age is not None and 0 <= degraded.age < 5
    assert isinstance(degraded.error, CircuitOpenError)
    assert stale.headers["Resilient-Degraded"].startswith("stale; reason=circuit_open; age=")
    stale.raise_for_status()  # unchanged: a 200 is a 200
    assert took < 0.5


def test_max_stale_exceeded_raises_the_original_error(upstream: Upstream) -> None:
    upstream.script("/users/1", Reply())
    session = _session(upstream, Degrade(max_stale=0.3, store=ResponseStore.memory()))
    session.get("/users/1")
    _open_circuit(session, upstream, "/other")
    time.sleep(0.5)
    with pytest.raises(CircuitOpenError):
        session.get("/users/1")
    assert upstream.count("/users/1") == 1


def test_a_call_refusing_degraded_answers_gets_the_error(upstream: Upstream) -> None:
    upstream.script("/users/1", Reply())
    session = _session(upstream)
    session.get("/users/1")
    _open_circuit(session, upstream, "/other")
    with pytest.raises(CircuitOpenError):
        session.get("/users/1", allow_stale=False)
    assert _degraded(session.get("/users/1")) is not None


def test_two_credentials_never_get_each_others_answer(upstream: Upstream) -> None:
    upstream.script("/me", Reply(body=b'{"user": "alice"}'))
    store = ResponseStore.memory()
    alice = _session(upstream, Degrade(store=store, store_authorized=True))
    alice.headers["Authorization"] = "Bearer alice-token"
    assert alice.get("/me").json() == {"user": "alice"}
    bob = _session(upstream, Degrade(store=store, store_authorized=True))
    bob.headers["Authorization"] = "Bearer bob-token"
    upstream.script("/me", Reply(status=503, body=b"down"))
    with pytest.raises(CircuitOpenError):
        bob.get("/me")  # 503: nothing stored for bob; the breaker opens
        bob.get("/me")
    # Same for an API key in the query string and in a header named like a secret.
    upstream.script("/q", Reply(body=b'{"user": "alice"}'))
    carol = _session(upstream, Degrade(store=store, store_authorized=True))
    assert carol.get("/q", params={"api_key": "one"}).json() == {"user": "alice"}
    upstream.script("/q", Reply(status=503))
    carol_other = _session(upstream, Degrade(store=store, store_authorized=True))
    assert carol_other.get("/q", params={"api_key": "two"}).status_code == 503
    assert carol_other.get("/q", params={"api_key": "one"}).json() == {"user": "alice"}
    # The stored keys hold no credential in clear.
    keys = list(store.backend.responses.keys())
    assert keys and not any("alice-token" in k or "api_key" in k for k in keys)
    stored = [store.backend.responses[k] for k in keys]
    for item in stored:
        assert "alice-token" not in str(dict(item.request.headers))
        assert "api_key=one" not in item.request.url and "api_key=one" not in item.url


def test_answers_to_requests_with_credentials_are_not_stored_unless_the_policy_says(
    upstream: Upstream,
) -> None:
    upstream.script("/me", Reply(body=b'{"user": "alice"}'))
    store = ResponseStore.memory()
    session = _session(upstream, Degrade(store=store))
    session.headers["Authorization"] = "Bearer alice-token"
    session.get("/me")
    assert list(store.backend.responses.keys()) == []
    upstream.script("/shared", Reply(headers={"Cache-Control": "public, max-age=60"}))
    session.get("/shared")
    assert len(list(store.backend.responses.keys())) == 1


def test_post_is_never_stored_nor_served(upstream: Upstream) -> None:
    upstream.script("/orders", Reply(body=b'{"order": 1}'))
    store = ResponseStore.memory()
    session = _session(upstream, Degrade(store=store, fallback={"fallback": True}))
    assert session.post("/orders", json={"a": 1}).json() == {"order": 1}
    assert list(store.backend.responses.keys()) == []
    _open_circuit(session, upstream, "/other")
    with pytest.raises(CircuitOpenError):
        session.post("/orders", json={"a": 1})
    with pytest.raises(CircuitOpenError):
        session.put("/orders", json={"a": 1})
    assert upstream.count("/orders") == 1


def test_no_store_is_not_kept_and_replaces_what_was(upstream: Upstream) -> None:
    upstream.script("/r", Reply(body=b'{"v": 1}'))
    store = ResponseStore.memory()
    session = _session(upstream, Degrade(store=store))
    session.get("/r")
    assert len(list(store.backend.responses.keys())) == 1
    upstream.script("/r", Reply(body=b'{"v": 2}', headers={"Cache-Control": "no-store"}))
    session.get("/r")
    assert list(store.backend.responses.keys()) == []


def test_vary_is_honoured(upstream: Upstream) -> None:
    upstream.script("/doc", Reply(body=b'{"lang": "en"}', headers={"Vary": "Accept-Language"}))
    session = _session(upstream)
    assert session.get("/doc", headers={"Accept-Language": "en"}).json() == {"lang": "en"}
    _open_circuit(session, upstream, "/other")
    assert session.get("/doc", headers={"Accept-Language": "en"}).json() == {"lang": "en"}
    with pytest.raises(CircuitOpenError):
        session.get("/doc", headers={"Accept-Language": "fr"})


def test_connection_refused_serves_stale(upstream: Upstream) -> None:
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    session = _session(upstream, breaker=False)
    session.get("/users/1")
    session.close()  # no kept-alive connection to the stopped server
    port = upstream.port
    upstream.__exit__()
    session.base_url = f"http://127.0.0.1:{port}"
    stale = session.get("/users/1")
    assert stale.json() == {"id": 1}
    degraded = _degraded(stale)
    assert degraded is not None and degraded.reason == "connection"
    assert isinstance(degraded.error, APIConnectionError)


def test_failure_status_after_retries_serves_stale_and_the_server_saw_every_retry(upstream: Upstream) -> None:
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    session = _session(upstream, breaker=False, retry=2)
    session.get("/users/1")
    upstream.script("/users/1", Reply(status=503, headers={"Retry-After": "0"}))
    stale = session.get("/users/1")
    assert upstream.count("/users/1") == 3
    assert stale.status_code == 200 and stale.json() == {"id": 1}
    degraded = _degraded(stale)
    assert degraded is not None and (degraded.reason, degraded.status, degraded.error) == (
        "status",
        503,
        None,
    )


def test_raise_for_status_session_gets_stale_instead_of_server_error(upstream: Upstream) -> None:
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    session = _session(upstream, breaker=False, raise_for_status=True)
    session.get("/users/1")
    upstream.script("/users/1", Reply(status=500))
    assert session.get("/users/1").json() == {"id": 1}
    with pytest.raises(ServerError):
        session.get("/users/1", allow_stale=False)


def test_read_timeout_serves_stale(upstream: Upstream) -> None:
    upstream.script("/slow", Reply(body=b'{"v": 1}'))
    session = _session(upstream, breaker=False, timeout=(1, 0.3))
    session.get("/slow")
    upstream.script("/slow", Reply(hang=True))
    started = time.monotonic()
    stale = session.get("/slow")
    assert time.monotonic() - started < 1.5
    degraded = _degraded(stale)
    assert degraded is not None and degraded.reason == "timeout"


def test_fallback_when_nothing_is_stored_then_the_failures_it_answers(upstream: Upstream) -> None:
    seen: list[str] = []

    def fallback(request: requests.PreparedRequest) -> Any:
        seen.append(request.url or "")
        return {"items": [], "partial": True}

    session = _session(
        upstream, Degrade(store=ResponseStore.memory(), fallback=fallback, on={"circuit_open"})
    )
    upstream.script("/list", Reply(status=503))
    # "status" is not among the failures answered: the 503 stays a 503.
    assert session.get("/list").status_code == 503
    answered = session.get("/list")  # the circuit is open now
    assert answered.json() == {"items": [], "partial": True}
    degraded = _degraded(answered)
    assert degraded is not None and (degraded.kind, degraded.age) == ("fallback", None)
    assert answered.headers["Resilient-Degraded"] == "fallback; reason=circuit_open"
    assert seen == [upstream.url + "/list"]
    assert upstream.count("/list") == 1


def test_route_groups_opt_in_per_path(upstream: Upstream) -> None:
    policy = Degrade(
        store=ResponseStore.memory(),
        routes={"/reports": Degrade(store=ResponseStore.memory(), max_stale=3600), "/payments": False},
    )
    session = _session(upstream, policy, breaker=False)
    upstream.script("/reports/1", Reply(body=b'{"r": 1}'))
    upstream.script("/payments/1", Reply(body=b'{"p": 1}'))
    session.get("/reports/1")
    session.get("/payments/1")
    upstream.script("/reports/1", Reply(status=503))
    upstream.script("/payments/1", Reply(status=503))
    assert session.get("/reports/1").json() == {"r": 1}
    assert session.get("/payments/1").status_code == 503


def test_store_that_hangs_costs_at_most_its_timeout(upstream: Upstream) -> None:
    pytest.importorskip("redis")
    # A "Redis" that accepts connections and never answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        store = ResponseStore.redis(f"redis://127.0.0.1:{port}/0", timeout=0.1, cooldown=0)
        session = _session(upstream, Degrade(store=store), breaker=False)
        upstream.script("/users/1", Reply(body=b'{"id": 1}'))
        started = time.monotonic()
        fresh = session.get("/users/1")  # the write fails: the call goes on
        wrote = time.monotonic() - started
        assert fresh.json() == {"id": 1}
        assert wrote < 0.1 + 0.5
        upstream.script("/users/1", Reply(status=503))
        started = time.monotonic()
        failed = session.get("/users/1")  # the read fails: the call ends as without a store
        read = time.monotonic() - started
        assert failed.status_code == 503
        assert read < 0.1 + 0.5
    finally:
        stop.set()
        thread.join(2)
        listener.close()
        for conn in held:
            conn.close()


def test_cache_mixin_subclass_serves_its_cache_while_the_circuit_is_open(upstream: Upstream) -> None:
    from requests_cache import CacheMixin

    class CachedResilientSession(CacheMixin, ResilientSession):  # type: ignore[misc]
        pass

    breaker = CircuitBreaker(consecutive_failures=1, open_wait=30, routes=False, store=MemoryStore())
    session = CachedResilientSession(
        backend="memory", expire_after=60, base_url=upstream.url, retry=0, breaker=breaker
    )
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    assert session.get("/users/1").json() == {"id": 1}
    upstream.script("/other", Reply(status=503))
    session.get("/other")
    with pytest.raises(CircuitOpenError):
        session.get("/other")
    cached = session.get("/users/1")
    assert cached.json() == {"id": 1}
    assert getattr(cached, "from_cache", False) is True
    assert upstream.count("/users/1") == 1
    # Not in its cache: the open circuit refuses, no socket opened.
    with pytest.raises(CircuitOpenError):
        session.get("/users/2")
    assert upstream.count("/users/2") == 0


def test_cache_mixin_subclass_with_a_degrade_policy_serves_stale_past_its_cache(upstream: Upstream) -> None:
    from requests_cache import CacheMixin

    class CachedResilientSession(CacheMixin, ResilientSession):  # type: ignore[misc]
        pass

    breaker = CircuitBreaker(consecutive_failures=1, open_wait=30, routes=False, store=MemoryStore())
    session = CachedResilientSession(
        backend="memory",
        expire_after=0.2,
        base_url=upstream.url,
        retry=0,
        breaker=breaker,
        degrade=Degrade(store=ResponseStore.memory()),
    )
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    session.get("/users/1")
    upstream.script("/other", Reply(status=503))
    session.get("/other")
    time.sleep(0.4)  # the CacheMixin's entry expired
    stale = session.get("/users/1")
    assert stale.json() == {"id": 1}
    assert _degraded(stale) is not None
    assert upstream.count("/users/1") == 1


def test_cache_mixin_subclass_reports_the_degraded_answer_it_was_given(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from requests_cache import CacheMixin

    from resilient_session.observe import CallEvent

    class CachedResilientSession(CacheMixin, ResilientSession):  # type: ignore[misc]
        pass

    breaker = CircuitBreaker(consecutive_failures=1, open_wait=30, routes=False, store=MemoryStore())
    session = CachedResilientSession(
        backend="memory",
        expire_after=0.2,
        base_url=upstream.url,
        retry=0,
        breaker=breaker,
        degrade=Degrade(store=ResponseStore.memory()),
    )
    seen: list[CallEvent] = []
    session.events.on_response(seen.append)
    session.events.on_error(seen.append)
    upstream.script("/users/1", Reply(body=b'{"id": 1}'))
    session.get("/users/1")
    time.sleep(0.4)  # the CacheMixin's entry expired
    upstream.script("/users/1", Reply(status=503))
    upstream.script("/users/2", Reply(status=503))
    with caplog.at_level(logging.INFO, logger="resilient_session"):
        by_status = session.get("/users/1")  # a 503: answered stale; it opens the circuit
        by_circuit = session.get("/users/1")  # refused by the open circuit: answered stale
        with pytest.raises(CircuitOpenError):
            session.get("/users/2")  # nothing kept: the error, reported as such
    assert [_degraded(a).reason for a in (by_status, by_circuit)] == ["status", "circuit_open"]  # type: ignore[union-attr]
    assert [(e.kind, e.outcome) for e in seen[1:]] == [
        ("response", "degraded"),
        ("response", "degraded"),
        ("error", "error"),
    ]
    assert [e.degraded.reason for e in seen[1:3]] == ["status", "circuit_open"]
    outcomes = [getattr(r, "outcome", None) for r in caplog.records if r.levelno == logging.INFO]
    assert outcomes == ["degraded", "degraded", "error"]  # one line per call, as the caller saw it
    assert upstream.count("/users/1") == 1 and upstream.count("/users/2") == 0


# -- the Flask layer -----------------------------------------------------------------------------------


def test_flask_answers_200_marked_and_health_reports_the_degraded_integration(upstream: Upstream) -> None:
    flask = pytest.importorskip("flask")
    from resilient_session.contrib.flask import Integrations

    app = flask.Flask(__name__)
    app.config["RESILIENT_INTEGRATIONS"] = {
        "integrations": {
            "catalog": {
                "base_url": upstream.url,
                "retry": False,
                "timeout": {"connect": 0.5, "read": 0.5},
                "breaker": {"consecutive_failures": 1, "open_wait": 30, "routes": False},
                "degrade": {"max_stale": 60, "store": {"type": "memory"}},
            }
        }
    }
    integrations = Integrations(app, error_handlers=True)
    app.register_blueprint(integrations.health_blueprint(), url_prefix="/integrations")

    @app.get("/products/<id>")
    def product(id: str) -> Any:
        return flask.jsonify(integrations["catalog"].get(f"/products/{id}").json())

    client = app.test_client()
    upstream.script("/products/1", Reply(body=b'{"id": 1, "price": 10}'))
    fresh = client.get("/products/1")
    assert fresh.status_code == 200 and "Resilient-Degraded" not in fresh.headers
    assert "Warning" not in fresh.headers
    assert client.get("/integrations/health").get_json()["integrations"]["catalog"]["status"] == "ok"

    upstream.script("/products/1", Reply(status=503))
    stale = client.get("/products/1")  # the 503 opens the circuit; the stored answer is served
    assert stale.status_code == 200
    assert stale.get_json() == {"id": 1, "price": 10}
    assert stale.headers["Resilient-Degraded"].startswith("stale; reason=status; age=")
    assert stale.headers["Resilient-Degraded"].endswith("; integration=catalog")
    assert stale.headers["Warning"] == '110 - "Response is Stale"'
    again = client.get("/products/1")
    assert again.status_code == 200 and "reason=circuit_open" in again.headers["Resilient-Degraded"]
    assert upstream.count("/products/1") == 1  # since the 503 was scripted: the open circuit sent nothing

    health = client.get("/integrations/health")
    assert health.status_code == 200  # its reads are answered: not unavailable
    report = health.get_json()["integrations"]["catalog"]
    assert report["status"] == "degraded"
    assert report["degraded_answers"]["count"] == 2
    assert report["degraded_answers"]["last"]["reason"] == "circuit_open"

    # Nothing stored for this one: the open circuit is a 503 problem, as without the policy.
    missing = client.get("/products/2")
    assert missing.status_code == 503
    assert "Resilient-Degraded" not in missing.headers


def test_a_spent_quota_serves_stale_without_a_request_reaching_the_server(upstream: Upstream) -> None:
    """The rate limit refuses a call whose slot does not fit in its time left (QuotaExceededError): with
    a degrade policy the caller gets the kept answer, marked with reason ``quota``, and nothing is sent."""
    from resilient_session.errors import QuotaExceededError
    from resilient_session.policies import RateLimit

    upstream.script("/rates", Reply(body=b'{"eur": 1.08}'))
    limit = RateLimit(calls=1, per=60, store=MemoryStore())
    session = _session(upstream, rate_limit=limit)
    assert session.get("/rates").json() == {"eur": 1.08}
    started = time.monotonic()
    stale = session.get("/rates", deadline=1)
    took = time.monotonic() - started
    info = _degraded(stale)
    assert info is not None and info.kind == "stale" and info.reason == "quota"
    assert stale.json() == {"eur": 1.08} and upstream.count("/rates") == 1 and took < 0.5
    with pytest.raises(QuotaExceededError):
        session.get("/rates", deadline=1, allow_stale=False)
    assert upstream.count("/rates") == 1


def test_a_cache_mixin_in_front_keeps_normalized_on_fresh_and_cached_answers(upstream: Upstream) -> None:
    """requests-cache reassigns a fresh response's class and builds its own for cached ones: both still
    read ``response.normalized``, and the second call is the cache's (one request reached the server)."""
    from requests_cache import CacheMixin

    class CachedResilientSession(CacheMixin, ResilientSession):  # type: ignore[misc]
        pass

    url = upstream.script("/users/7", Reply(body=b'{"id": 7}'))
    with CachedResilientSession(backend="memory") as session:
        fresh: Any = session.get(url)
        cached: Any = session.get(url)
    assert fresh.normalized.data == {"id": 7} and cached.normalized.data == {"id": 7}
    assert getattr(cached, "from_cache", False) is True
    assert upstream.count("/users/7") == 1
