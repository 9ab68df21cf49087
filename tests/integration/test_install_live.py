"""install(): code that never builds a session of ours (module-level ``requests.get``, API clients that make
their own ``requests.Session``) gets the framework, against real servers on 127.0.0.1 that count what they
received. The pytest plugin uninstalls after every test that installed."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_cache
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import resilient_session
from resilient_session import (
    APIConnectionError,
    CircuitBreaker,
    CircuitOpenError,
    ResilientSession,
    RetryPolicy,
    ServerError,
    registry,
)
from resilient_session._compat.requests import OriginalSession
from resilient_session.errors import APIReadTimeout

from .upstream import Reply, Upstream

REQUESTS_OWN = {name: OriginalSession.__dict__[name] for name in ("send", "get_adapter")}
FAST = RetryPolicy(total=2, backoff_factor=0)


@pytest.fixture
def second() -> Iterator[Upstream]:
    """Another origin, registered as no integration."""
    with Upstream() as server:
        yield server


@pytest.fixture
def cache() -> Iterator[None]:
    yield
    requests_cache.uninstall_cache()


def _requests_is_requests() -> bool:
    return all(OriginalSession.__dict__[name] is own for name, own in REQUESTS_OWN.items())


def _outcome(call: Any) -> int | str:
    try:
        return int(call().status_code)
    except CircuitOpenError:
        return "refused"


# -- failures first ----------------------------------------------------------------------------------


def test_a_module_level_get_gets_the_integrations_retries_and_uninstall_gives_one_request_again(
    upstream: Upstream,
) -> None:
    """The defaults of a registered integration: a 503 is retried, the answer after it returned."""
    registry.register("billing", base_url=upstream.url + "/v1")
    url = upstream.script("/v1/charges", Reply(503), Reply(200, b'{"id": 1}'))
    assert requests.get(url).status_code == 503  # before install(): requests as it always was
    assert upstream.count("/v1/charges") == 1

    resilient_session.install()
    upstream.script("/v1/charges", Reply(503), Reply(200, b'{"id": 1}'))
    response = requests.get(url)
    assert (response.status_code, response.json()) == (200, {"id": 1})
    assert upstream.count("/v1/charges") == 2
    assert response.attempts == 2  # type: ignore[attr-defined]

    resilient_session.uninstall()
    assert _requests_is_requests()
    upstream.script("/v1/charges", Reply(503), Reply(200))
    assert [requests.get(url).status_code for _ in range(3)] == [503, 200, 200]
    assert upstream.count("/v1/charges") == 3  # one request per call again


def test_module_level_calls_share_the_circuit_with_the_integrations_sessions(upstream: Upstream) -> None:
    url = upstream.script("/v1/charges", Reply(503))
    registry.register(
        "billing",
        base_url=upstream.url + "/v1",
        retry=False,
        breaker=CircuitBreaker(consecutive_failures=4, open_wait=30),
    )
    resilient_session.install()
    calls = [
        lambda: requests.get(url),
        lambda: requests.post(url, json={}),
        lambda: ResilientSession(integration="billing").get("/charges"),
        lambda: requests.Session().get(url),
    ]
    assert [_outcome(call) for call in calls] == [503] * 4  # returned, not raised: control flow kept
    assert [_outcome(call) for call in calls] == ["refused"] * 4  # both kinds of caller are refused
    assert upstream.count("/v1/charges") == 4
    with pytest.raises(requests.ConnectionError):  # what legacy code already catches
        requests.get(url)

    resilient_session.uninstall()
    assert requests.get(url).status_code == 503  # uninstalled: no circuit for plain requests
    assert upstream.count("/v1/charges") == 5
    assert _outcome(lambda: ResilientSession(integration="billing").get("/charges")) == "refused"


def test_failures_are_the_typed_errors_which_are_still_requests_exceptions(
    upstream: Upstream, closed_port: int
) -> None:
    upstream.script("/slow", Reply(hang=True))
    registry.register("slow", base_url=upstream.url, timeout=(1, 0.3), retry=False)
    registry.register("down", base_url=f"http://127.0.0.1:{closed_port}", retry=False)
    resilient_session.install()
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout) as caught:
        requests.get(upstream.url + "/slow")  # requests' default: no timeout, wait forever
    assert time.monotonic() - started < 2.0
    assert isinstance(caught.value, APIReadTimeout)
    with pytest.raises(requests.ConnectionError) as refused:
        requests.get(f"http://127.0.0.1:{closed_port}/x")
    assert isinstance(refused.value, APIConnectionError)
    # The caller's timeout still wins over the integration's.
    started = time.monotonic()
    with pytest.raises(APIReadTimeout):
        requests.get(upstream.url + "/slow", timeout=0.1)
    assert time.monotonic() - started < 0.3 + 0.5


def test_an_integration_that_raises_for_status_raises_after_its_retries(upstream: Upstream) -> None:
    url = upstream.script("/orders", Reply(503))
    registry.register("orders", base_url=upstream.url, raise_for_status=True, retry=FAST)
    resilient_session.install()
    with pytest.raises(ServerError) as caught:
        requests.get(url)
    assert caught.value.status == 503
    assert isinstance(caught.value, requests.RequestException)
    assert upstream.count("/orders") == 3


def test_an_origin_of_no_integration_is_left_alone_unless_every_origin_is_asked_for(
    upstream: Upstream, second: Upstream
) -> None:
    registry.register("billing", base_url=upstream.url)
    url = second.script("/other", Reply(503), Reply(200))
    resilient_session.install()
    assert requests.get(url).status_code == 503
    assert second.count("/other") == 1

    resilient_session.install(all_origins=True)  # again: the option is set anew
    second.script("/other", Reply(503), Reply(200))
    assert requests.get(url).status_code == 200
    assert second.count("/other") == 2
    # Nothing is added to what the caller's session sends (no request-id header, no integration header).
    assert "X-Request-ID" not in second.calls["/other"][-1].headers

    resilient_session.install()
    second.script("/other", Reply(503), Reply(200))
    assert requests.get(url).status_code == 503
    assert second.count("/other") == 1


def test_every_origin_shares_state_per_origin_with_plain_resilient_sessions(second: Upstream) -> None:
    url = second.script("/flaky", Reply(503))
    resilient_session.install(all_origins=True)
    outcomes = [_outcome(lambda: requests.get(url, timeout=5)) for _ in range(3)]
    outcomes += [_outcome(lambda: ResilientSession(retry=False).get(url)) for _ in range(3)]
    assert "refused" in outcomes and outcomes[0] == 503
    assert _outcome(lambda: ResilientSession().get(url)) == "refused"  # the default: per origin
    refused_at = outcomes.index("refused")
    assert second.count("/flaky") == sum(1 if i >= 3 else 4 for i in range(refused_at))


# -- sessions legacy code and API clients make ------------------------------------------------------


class VendorClient:
    """An API client as they are shipped: its own Session subclass, adapter, headers, auth and hooks."""

    class _Session(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("headers", {})["X-Vendor"] = "1"
            return super().request(method, url, *args, **kwargs)

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.seen: list[int] = []
        self.session = self._Session()
        self.session.mount("http://", HTTPAdapter(pool_maxsize=4))  # max_retries left at requests' default
        self.session.auth = ("vendor", "pw")
        self.session.hooks["response"].append(lambda r, *a, **k: self.seen.append(r.status_code))

    def fetch(self, path: str) -> requests.Response:
        return self.session.get(self.base_url + path)


def test_an_api_client_with_its_own_session_subclass_and_adapter_gets_it(upstream: Upstream) -> None:
    registry.register("vendor", base_url=upstream.url)
    client = VendorClient(upstream.url)  # built before install()
    resilient_session.install()
    upstream.script("/items", Reply(503), Reply(503), Reply(200))
    response = client.fetch("/items")
    assert response.status_code == 200
    assert upstream.count("/items") == 3
    assert client.seen == [200]  # hooks see the call's answer, as requests gives it
    received = upstream.calls["/items"]
    assert all(call.headers["X-Vendor"] == "1" for call in received)  # its own session, everything kept
    assert all(call.headers["Authorization"].startswith("Basic ") for call in received)


def test_an_adapter_given_its_own_retries_keeps_them(upstream: Upstream) -> None:
    registry.register("vendor", base_url=upstream.url)
    session = requests.Session()
    retry = Retry(total=3, status_forcelist=[503], backoff_factor=0, raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    resilient_session.install()
    url = upstream.script("/items", Reply(503))
    assert session.get(url).status_code == 503
    assert upstream.count("/items") == 4  # its Retry(total=3), not the integration's 3 + 1 by default


def test_redirect_hops_are_part_of_the_same_call(upstream: Upstream) -> None:
    registry.register("vendor", base_url=upstream.url, retry=FAST)
    upstream.script("/old", Reply(302, b"", headers={"Location": "/new"}))
    upstream.script("/new", Reply(503), Reply(200))
    resilient_session.install()
    response = requests.get(upstream.url + "/old")
    assert response.status_code == 200 and [r.status_code for r in response.history] == [302]
    assert (upstream.count("/old"), upstream.count("/new")) == (1, 2)


def test_a_resilient_session_is_not_wrapped_twice(upstream: Upstream) -> None:
    registry.register("vendor", base_url=upstream.url, retry=RetryPolicy(total=1, backoff_factor=0))
    resilient_session.install()
    upstream.script("/items", Reply(503))
    assert ResilientSession(integration="vendor").get("/items").status_code == 503
    assert upstream.count("/items") == 2  # its retry once, not once more around it


# -- the switch --------------------------------------------------------------------------------------


def test_installing_twice_and_uninstalling_twice_is_harmless(upstream: Upstream) -> None:
    registry.register("vendor", base_url=upstream.url, retry=RetryPolicy(total=1, backoff_factor=0))
    resilient_session.uninstall()  # never installed: nothing happens
    assert _requests_is_requests()
    resilient_session.install()
    resilient_session.install()
    assert OriginalSession.__dict__["send"].__wrapped__ is REQUESTS_OWN["send"]  # wrapped once
    url = upstream.script("/items", Reply(503))
    assert requests.get(url).status_code == 503
    assert upstream.count("/items") == 2
    resilient_session.uninstall()
    resilient_session.uninstall()
    assert _requests_is_requests()


def test_threads_calling_while_install_and_uninstall_toggle_never_fail(upstream: Upstream) -> None:
    registry.register("vendor", base_url=upstream.url)
    url = upstream.script("/ok", Reply(200))
    stop = threading.Event()
    failures: list[BaseException] = []
    statuses: list[int] = []

    def worker() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                statuses.append(requests.get(url, timeout=5).status_code)
                statuses.append(session.get(url, timeout=5).status_code)
            except BaseException as exc:  # every failure is the test's finding
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(60):
            resilient_session.install(all_origins=bool(i % 3))
            time.sleep(0.002)
            resilient_session.uninstall()
            time.sleep(0.002)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert failures == []
    assert len(statuses) > 20 and set(statuses) == {200}
    assert _requests_is_requests()


def test_a_forked_child_keeps_it_and_can_switch_it_while_a_parent_thread_held_the_lock(
    upstream: Upstream,
) -> None:
    from resilient_session._install import _SWITCH

    registry.register("vendor", base_url=upstream.url, retry=FAST)
    url = upstream.script("/items", Reply(503), Reply(200))
    resilient_session.install()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _SWITCH.lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only when everything held
        code = 1
        try:
            status = requests.get(url, timeout=5).status_code
            resilient_session.uninstall()  # the lock the parent's thread held is not held here
            code = 0 if status == 200 and _requests_is_requests() else 2
        finally:
            os._exit(code)
    release.set()
    holder.join(5)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert upstream.count("/items") == 2
    assert not _requests_is_requests()  # the parent is still installed


# -- degrade ---------------------------------------------------------------------------------------


def test_a_module_level_get_gets_the_integrations_stale_answer_while_its_circuit_is_open(
    upstream: Upstream,
) -> None:
    from resilient_session.policies import Degrade
    from resilient_session.stores import ResponseStore

    registry.register(
        "catalog",
        base_url=upstream.url,
        retry=False,
        breaker=CircuitBreaker(consecutive_failures=2, open_wait=30),
        degrade=Degrade(store=ResponseStore.memory(), max_stale=60),
    )
    resilient_session.install()
    url = upstream.script("/items/1", Reply(200, b'{"id": 1}'))
    assert requests.get(url).json() == {"id": 1}  # kept
    upstream.script("/items/1", Reply(503))
    answers = [requests.get(url) for _ in range(2)]  # 503s: served stale, and they open the circuit
    assert [(a.status_code, a.json(), a.normalized.degraded.reason) for a in answers] == [  # type: ignore[attr-defined]
        (200, {"id": 1}, "status")
    ] * 2
    assert upstream.count("/items/1") == 2
    started = time.monotonic()
    during = [requests.get(url), requests.Session().get(url)]
    assert time.monotonic() - started < 1.0
    for answer in during:
        assert (answer.status_code, answer.json()) == (200, {"id": 1})
        assert answer.normalized.degraded.reason == "circuit_open"  # type: ignore[attr-defined]
        assert answer.headers["Resilient-Degraded"].startswith("stale")
    assert upstream.count("/items/1") == 2  # the open circuit: nothing reached the server
    with pytest.raises(CircuitOpenError):
        requests.post(url, json={})  # never answered from the store
    with pytest.raises(CircuitOpenError):
        requests.get(upstream.url + "/items/2")  # nothing kept for it
    assert upstream.count("/items/1") == 2 and upstream.count("/items/2") == 0

    resilient_session.uninstall()
    assert requests.get(url).status_code == 503  # uninstalled: requests as it always was


def test_a_session_requests_cache_fronts_is_not_given_degraded_answers(
    upstream: Upstream, cache: None
) -> None:
    """requests-cache would store a degraded answer as a fresh one: its sessions get the failure."""
    from resilient_session.policies import Degrade
    from resilient_session.stores import ResponseStore

    registry.register(
        "catalog", base_url=upstream.url, retry=False, degrade=Degrade(store=ResponseStore.memory())
    )
    resilient_session.install()
    requests_cache.install_cache(backend="memory", expire_after=1)
    url = upstream.script("/items/1", Reply(200, b'{"id": 1}'))
    assert requests.get(url).json() == {"id": 1}
    time.sleep(1.1)
    upstream.script("/items/1", Reply(503))
    answer = requests.get(url)
    assert answer.status_code == 503
    assert "Resilient-Degraded" not in answer.headers
    stored = list(requests_cache.get_cache().responses.values())  # type: ignore[union-attr]
    assert stored and all("Resilient-Degraded" not in r.headers for r in stored)
    assert upstream.count("/items/1") == 1


# -- requests-cache ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["install_cache first", "install() first"])
def test_requests_cache_install_cache_composes_in_both_orders(
    upstream: Upstream, cache: None, order: str
) -> None:
    registry.register("vendor", base_url=upstream.url, retry=FAST)
    url = upstream.script("/items", Reply(503), Reply(200, b'{"n": 1}'))
    if order == "install_cache first":
        requests_cache.install_cache(backend="memory")
        resilient_session.install()
    else:
        resilient_session.install()
        requests_cache.install_cache(backend="memory")
    first = requests.get(url)
    assert (first.status_code, first.json()) == (200, {"n": 1})
    assert upstream.count("/items") == 2  # the 503 was retried on the cache miss
    second = requests.get(url)
    assert (second.status_code, second.json(), second.from_cache) == (200, {"n": 1}, True)  # type: ignore[attr-defined]
    assert upstream.count("/items") == 2  # served from the cache: the server saw nothing more

    resilient_session.uninstall()
    other = upstream.script("/fresh", Reply(503), Reply(200))
    assert requests.get(other).status_code == 503  # still cached by requests-cache, no longer retried
    assert upstream.count("/fresh") == 1


def test_a_resilient_session_caches_with_requests_caches_mixin(upstream: Upstream) -> None:
    """What docs/migrating.md shows: install_cache() never reaches a ResilientSession; the mixin does."""

    class CachedAPI(requests_cache.CacheMixin, ResilientSession):  # type: ignore[misc]
        pass

    url = upstream.script("/items", Reply(503), Reply(200, b'{"n": 1}'))
    with CachedAPI(backend="memory", retry=FAST) as session:
        assert session.get(url).json() == {"n": 1}
        assert upstream.count("/items") == 2  # retried
        cached = session.get(url)
        assert cached.json() == {"n": 1} and cached.from_cache
        assert upstream.count("/items") == 2


# -- green threads and pyOpenSSL, each in a fresh interpreter ----------------------------------------

GREEN = """
import json, sys, time

import requests

import resilient_session
from resilient_session import RetryPolicy, registry

flaky, slow, library = sys.argv[1:4]
registry.register("flaky", base_url=flaky, retry=RetryPolicy(total=2, backoff_factor=0))
registry.register("slow", base_url=slow, deadline=0.5, retry=False)
resilient_session.install()  # before the patch: its lock is a real one
if library == "gevent":
    from gevent import monkey
    monkey.patch_all()
    import gevent
    spawn, sleep = gevent.spawn, gevent.sleep
    join = lambda jobs: gevent.joinall(jobs, timeout=20)
else:
    import eventlet
    eventlet.monkey_patch()
    spawn, sleep = eventlet.spawn, eventlet.sleep
    join = lambda jobs: [job.wait() for job in jobs]

def report(**fields):
    sys.stdout.write(json.dumps(fields) + "\\n")
    sys.stdout.flush()

def call(url):
    started = time.monotonic()
    try:
        outcome = "status %d" % requests.get(url).status_code
    except Exception as exc:
        outcome = type(exc).__name__
    report(url=url, outcome=outcome, elapsed=time.monotonic() - started)

def toggle():
    for _ in range(20):
        resilient_session.uninstall()
        sleep(0)
        resilient_session.install()
        sleep(0)

join([spawn(toggle)] + [spawn(call, flaky + "/ok") for _ in range(4)])
resilient_session.install()
join([spawn(call, slow + "/drip") for _ in range(3)] + [spawn(call, flaky + "/f%d" % i) for i in range(3)])
"""


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_green_threads_patched_after_install_keep_retries_and_deadlines(
    upstream: Upstream, second: Upstream, library: str
) -> None:
    if importlib.util.find_spec(library) is None:  # not imported here: eventlet hooks fork on import
        pytest.skip(f"{library} is not installed")
    upstream.script("/ok", Reply(200))
    for i in range(3):
        upstream.script(f"/f{i}", Reply(503), Reply(200))
    second.script("/drip", Reply(200, b"x" * 100, drip=0.05))
    completed = subprocess.run(
        [sys.executable, "-c", GREEN, upstream.url, second.url, library],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    outcomes = sorted((r["url"].rsplit("/", 1)[1], r["outcome"]) for r in results)
    assert outcomes == sorted(
        [("ok", "status 200")] * 4
        + [("drip", "DeadlineExceededError")] * 3
        + [(f"f{i}", "status 200") for i in range(3)]
    ), results
    assert all(r["elapsed"] < 0.5 + 0.5 for r in results if r["url"].endswith("/drip")), results
    assert [upstream.count(f"/f{i}") for i in range(3)] == [2, 2, 2]  # each 503 retried once
    assert second.count("/drip") == 3  # no retry: the integration's retry=False


PYOPENSSL = """
import sys

import requests
import urllib3.contrib.pyopenssl

import resilient_session
from resilient_session import RetryPolicy, registry

base, ca = sys.argv[1:3]
urllib3.contrib.pyopenssl.inject_into_urllib3()
registry.register("tls", base_url=base, retry=RetryPolicy(total=2, backoff_factor=0))
resilient_session.install()
response = requests.get(base + "/items", verify=ca, stream=True)
print(response.status_code, response.attempts, type(response.raw._connection.sock).__name__)
response.close()
"""


def test_pyopenssl_injected_keeps_the_retries(tmp_path: Path) -> None:
    if importlib.util.find_spec("OpenSSL") is None:
        pytest.skip("pyOpenSSL is not installed")
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = Upstream()
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    with server:
        url = f"https://127.0.0.1:{server.port}"
        server.script("/items", Reply(503), Reply(200))
        completed = subprocess.run(
            [sys.executable, "-c", PYOPENSSL, url, str(ca_file)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=False,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert completed.stdout.split() == ["200", "2", "WrappedSocket"]  # pyOpenSSL's socket, really
        assert server.count("/items") == 2


# -- what else an installed call gets, and what it leaves alone ------------------------------------------


def test_the_integrations_deadline_and_bulkhead_apply(upstream: Upstream) -> None:
    from resilient_session import Bulkhead
    from resilient_session.errors import BulkheadFullError, DeadlineExceededError

    upstream.script("/drip", Reply(200, b"x" * 100, drip=0.05))
    upstream.script("/slow", Reply(200, delay=0.3))
    registry.register(
        "slow", base_url=upstream.url, deadline=0.5, retry=False, bulkhead=Bulkhead(1, max_wait=0)
    )
    resilient_session.install()
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        requests.get(upstream.url + "/drip", timeout=5)  # each read is quick; the whole call is not
    assert time.monotonic() - started < 0.5 + 0.4

    held: list[int] = []
    holder = threading.Thread(target=lambda: held.append(requests.get(upstream.url + "/slow").status_code))
    holder.start()
    deadline = time.monotonic() + 2
    while upstream.count("/slow") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(requests.ConnectionError) as caught:  # what legacy code already catches
        requests.get(upstream.url + "/slow", timeout=5)
    holder.join(5)
    assert isinstance(caught.value, BulkheadFullError)
    assert held == [200]
    assert upstream.count("/slow") == 1  # refused without a request


def test_the_integrations_headers_and_credentials_are_not_added(upstream: Upstream) -> None:
    from resilient_session import BearerAuth

    registry.register(
        "billing", base_url=upstream.url, auth=BearerAuth("tok-0123456789"), headers={"X-Team": "billing"}
    )
    url = upstream.script("/items", Reply(503), Reply(200))
    resilient_session.install()
    assert requests.get(url, headers={"X-Mine": "1"}).status_code == 200
    received = upstream.calls["/items"]
    assert len(received) == 2
    for call in received:
        assert call.headers["X-Mine"] == "1"
        assert not {"Authorization", "X-Team", "X-Request-ID"} & set(call.headers)


def test_a_traced_integrations_installed_call_has_its_spans_and_traceparent(upstream: Upstream) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry.register("billing", base_url=upstream.url, tracing=provider, retry=FAST)
    url = upstream.script("/items", Reply(503), Reply(200))
    resilient_session.install()
    assert requests.get(url).status_code == 200
    spans = exporter.get_finished_spans()
    (parent,) = [s for s in spans if s.kind is SpanKind.INTERNAL]
    children = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert parent.name == "GET billing" and len(children) == 2
    sent = [call.headers["traceparent"].split("-")[2] for call in upstream.calls["/items"]]
    assert sent == [f"{child.context.span_id:016x}" for child in children]


def test_our_own_token_requests_run_as_designed_even_for_every_origin(
    upstream: Upstream, second: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OAuth2 token request is made through a requests session of its own, on behalf of the call: no
    breaker of the token origin refuses it under install(all_origins=True)."""
    from resilient_session import OAuth2ClientCredentials
    from resilient_session.errors import TokenEndpointError

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    token_url = second.script("/token", Reply(503, b'{"error": "busy"}'))
    api = upstream.script("/items", Reply(200))
    resilient_session.install(all_origins=True)
    for _ in range(7):  # past the default breaker's 5 consecutive failures
        session = ResilientSession(auth=OAuth2ClientCredentials(token_url, "client-1", "s3cr3t"))
        with session, pytest.raises(TokenEndpointError):
            session.get(api)
    assert second.count("/token") == 7  # every one reached the token endpoint
    assert upstream.count("/items") == 0


def test_a_plain_session_called_from_another_calls_hook_does_not_inherit_that_call(
    upstream: Upstream, second: Upstream
) -> None:
    """A plain adapter once used by an installed call keeps its pools; a call of no integration made from
    a hook of another call still sends as requests does, outside that call's deadline."""
    registry.register("billing", base_url=upstream.url)
    upstream.script("/items", Reply(200))
    side = second.script("/side", Reply(200, delay=0.5))
    plain = requests.Session()
    resilient_session.install()
    assert plain.get(upstream.url + "/items").status_code == 200  # through the integration
    seen: list[int | str] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        try:
            seen.append(plain.get(side, timeout=5).status_code)
        except requests.RequestException as exc:
            seen.append(type(exc).__name__)

    with ResilientSession(deadline=0.3) as session:
        session.hooks["response"].append(hook)
        # The outer call may well end past its own deadline; the hook's call is what is checked.
        with contextlib.suppress(requests.RequestException):
            session.get(upstream.url + "/items")
    assert seen == [200]
    assert second.count("/side") == 1


@pytest.mark.parametrize("hooked", [False, True], ids=["no-hook", "response-hook"])
def test_a_body_broken_mid_way_is_sent_again(upstream: Upstream, hooked: bool) -> None:
    registry.register("billing", base_url=upstream.url, retry=FAST)
    url = upstream.script("/items", Reply(200, b'{"items": [1, 2, 3, 4]}', reset="mid"), Reply(200))
    session = requests.Session()
    seen: list[int] = []
    if hooked:  # requests reads the body after the hooks: the hop is sent again from the session
        session.hooks["response"].append(lambda r, *a, **k: seen.append(r.status_code))
    resilient_session.install()
    response = session.get(url)
    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert upstream.count("/items") == 2
    assert seen == ([200, 200] if hooked else [])
