"""The rate limit, degraded answers, the body size limit and credentials bound to their origins, on the
httpx clients, against loopback servers that record what they received and when; shared with requests
sessions of the same integration."""

from __future__ import annotations

import gzip
import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

pytest.importorskip("requests_cache")

import resilient_session as rs
from resilient_session import (
    APIKeyAuth,
    BasicAuth,
    BearerAuth,
    CircuitBreaker,
    OAuth2ClientCredentials,
    RetryPolicy,
    registry,
)
from resilient_session.errors import CircuitOpenError, MalformedResponseError, QuotaExceededError
from resilient_session.httpx import (
    AsyncResilientClient,
    HTTPXCircuitOpen,
    HTTPXConnectError,
    HTTPXQuotaExceeded,
    HTTPXResponseTooLarge,
    ResilientClient,
)
from resilient_session.policies import Degrade, RateLimit
from resilient_session.stores import MemoryStore, ResponseStore
from tests.conftest import free_port
from tests.integration.rawserver import Conn, RawServer, Received, answer, response
from tests.secret_forms import leaks

from .upstream import Reply, Upstream

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _registry() -> Iterator[None]:
    saved = registry.snapshot()
    yield
    registry.restore(saved)


def _arrivals(upstream: Upstream, path: str) -> list[float]:
    with upstream.lock:
        return [call.at for call in upstream.calls[path]]


def _breaker() -> CircuitBreaker:
    """Opens after one failure, for 30 s; its own store (no other test shares the circuit)."""
    return CircuitBreaker(consecutive_failures=1, open_wait=30, routes=False, store=MemoryStore())


# -- rate limit: refusals first ------------------------------------------------------------------------


async def test_no_slot_within_the_deadline_raises_at_once_and_sends_nothing(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply())
    limit = RateLimit(calls=1, per=2, store=MemoryStore())
    async with AsyncResilientClient(rate_limit=limit, deadline=1.0) as c:
        assert (await c.get(url)).status_code == 200
        started = time.perf_counter()
        with pytest.raises(HTTPXQuotaExceeded) as caught:
            await c.get(url)
        took = time.perf_counter() - started
    assert took < 0.05
    assert upstream.count("/q") == 1
    error = caught.value
    # Ours, and httpx's "could not get a connection": both kinds of except clause catch it.
    assert isinstance(error, QuotaExceededError) and isinstance(error, httpx.ConnectError)
    assert error.retry_after == pytest.approx(2.0, abs=0.1)
    assert error.key == f"http://127.0.0.1:{upstream.port}"
    sent: Any = error.request  # the httpx.Request (typed as requests' by the base class)
    assert isinstance(sent, httpx.Request) and sent.url == httpx.URL(url)


async def test_a_quota_spent_by_a_sync_session_refuses_the_async_client_of_the_same_integration(
    upstream: Upstream,
) -> None:
    upstream.script("/v1/q", Reply())
    registry.register("quotaapi", base_url=upstream.url + "/v1", rate_limit=RateLimit(calls=1, per=5))
    session = registry.session("quotaapi", deadline=1.0)
    assert session.get("q").status_code == 200
    session.close()
    async with AsyncResilientClient.for_integration("quotaapi", deadline=1.0) as c:
        policy = c.resilient_transport.policies.rate_limit
        assert policy is not None and policy.name == "quotaapi"
        with pytest.raises(HTTPXQuotaExceeded):
            await c.get("q")
    with (
        ResilientClient.for_integration("quotaapi", deadline=1.0) as sync_client,
        pytest.raises(HTTPXQuotaExceeded),
    ):
        sync_client.get("q")
    assert upstream.count("/v1/q") == 1


async def test_a_hold_learned_by_the_async_client_holds_the_sync_session_back(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply(status=429, headers={"Retry-After": "30"}))
    limit = RateLimit(store=MemoryStore())
    async with AsyncResilientClient(rate_limit=limit, retry=False) as c:
        assert (await c.get(url)).status_code == 429
    session = rs.ResilientSession(rate_limit=limit, deadline=2.0)
    started = time.perf_counter()
    with pytest.raises(QuotaExceededError) as caught:
        session.get(url)
    assert time.perf_counter() - started < 0.05
    assert caught.value.retry_after == pytest.approx(30, abs=1)
    assert upstream.count("/q") == 1
    session.close()


async def test_a_task_cancelled_while_waiting_for_its_slot_sends_nothing(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply())
    limit = RateLimit(calls=1, per=1, store=MemoryStore())
    async with AsyncResilientClient(rate_limit=limit) as c:
        await c.get(url)
        started = time.monotonic()
        with anyio.move_on_after(0.2) as scope:
            await c.get(url)  # its slot is ~1 s away: it sleeps, and is cancelled while it does
        assert scope.cancelled_caught
        assert time.monotonic() - started < 0.2 + 0.05
        await anyio.sleep(1.0)  # past the slot it had: it was not sent late either
    assert upstream.count("/q") == 1


async def test_a_slot_reserved_by_a_cancelled_call_goes_to_the_next_caller(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply())
    limit = RateLimit(calls=1, per=1, store=MemoryStore())
    async with AsyncResilientClient(rate_limit=limit, retry=False) as c:
        await c.get(url)  # slot 0, now
        first = _arrivals(upstream, "/q")[0]
        with anyio.move_on_after(0.2):
            await c.get(url)  # reserves slot 1 (~1 s away), cancelled while it sleeps
        await c.get(url)  # takes slot 1, given back; without it, slot 2 (~2 s away)
    arrivals = _arrivals(upstream, "/q")
    assert len(arrivals) == 2  # the cancelled call sent nothing, later either
    assert 0.85 <= arrivals[1] - first < 1.5


async def test_a_cancelled_slot_between_two_others_stays_spent(upstream: Upstream) -> None:
    # Slots every 0.5 s: calls wait for slots 1, 2 and 3; the one waiting for slot 2 is cancelled.
    # Giving slot 2 to a newcomer would be fine, but it is not the last one reserved: the newcomer gets
    # slot 4, and no two calls ever share an interval.
    url = upstream.script("/q", Reply())
    limit = RateLimit(calls=2, per=1, store=MemoryStore())
    async with AsyncResilientClient(rate_limit=limit, retry=False) as c:
        await c.get(url)
        doomed = anyio.CancelScope()

        async def cancellable() -> None:
            with doomed:
                await c.get(url)

        async with anyio.create_task_group() as tg:
            tg.start_soon(c.get, url)
            await anyio.sleep(0.05)
            tg.start_soon(cancellable)
            await anyio.sleep(0.05)
            tg.start_soon(c.get, url)
            await anyio.sleep(0.05)
            doomed.cancel()
            await anyio.sleep(0.05)
            tg.start_soon(c.get, url)
    arrivals = _arrivals(upstream, "/q")
    assert len(arrivals) == 4  # the cancelled call sent nothing
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(arrivals)]
    assert all(gap >= 0.4 for gap in gaps), gaps
    assert arrivals[-1] - arrivals[0] >= 1.9  # slots 0, 1, 3 and 4


# -- rate limit: pacing --------------------------------------------------------------------------------


async def test_a_sync_session_and_an_async_client_draw_from_one_schedule(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply())
    limit = RateLimit(calls=5, per=1, store=MemoryStore())  # one call every 0.2 s
    session = rs.ResilientSession(rate_limit=limit)
    async with AsyncResilientClient(rate_limit=limit) as c:

        def sync_calls() -> None:
            for _ in range(3):
                assert session.get(url).status_code == 200

        async def async_calls() -> None:
            for _ in range(3):
                assert (await c.get(url)).status_code == 200

        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, sync_calls)
            tg.start_soon(async_calls)
    session.close()
    times = sorted(_arrivals(upstream, "/q"))
    assert len(times) == 6
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Each of the two callers alone would send its three calls 0.2 s apart, side by side with the other.
    assert min(gaps) >= 0.2 - 0.03, gaps
    assert times[-1] - times[0] >= 5 * 0.2 - 0.05


async def test_a_retry_takes_its_own_slot(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply(status=503), Reply())
    limit = RateLimit(calls=4, per=1, store=MemoryStore(), adaptive=False)
    async with AsyncResilientClient(rate_limit=limit, retry=RetryPolicy(2, backoff_factor=0)) as c:
        response = await c.get(url)
    assert response.status_code == 200
    first, second = _arrivals(upstream, "/q")
    assert second - first >= 0.25 - 0.03


# -- degraded answers ----------------------------------------------------------------------------------


async def test_open_circuit_gives_the_async_client_the_answer_a_sync_session_stored(
    upstream: Upstream,
) -> None:
    upstream.script("/users/1", Reply(body=b'{"id": 1, "name": "Ada"}'))
    upstream.script("/other", Reply(status=503, body=b"down"))
    store = ResponseStore.memory()
    breaker = _breaker()
    registry.register("people", base_url=upstream.url, retry=0, breaker=breaker, degrade=Degrade(store=store))
    session = registry.session("people")
    assert session.get("/users/1").json() == {"id": 1, "name": "Ada"}
    session.close()
    upstream.script("/users/1", Reply(body=b'{"id": 1, "name": "CHANGED"}'))
    async with AsyncResilientClient.for_integration("people") as c:
        assert (await c.get("/other")).status_code == 503  # the circuit opens
        started = time.monotonic()
        stale = await c.get("/users/1")
        took = time.monotonic() - started
    assert upstream.count("/users/1") == 0  # since it changed: the open circuit sent nothing
    assert took < 0.2
    assert stale.status_code == 200
    assert stale.json() == {"id": 1, "name": "Ada"}
    degraded = stale.normalized.degraded  # type: ignore[attr-defined]
    assert degraded is not None and degraded.kind == "stale" and degraded.reason == "circuit_open"
    assert isinstance(degraded.error, CircuitOpenError)
    assert stale.headers["Resilient-Degraded"].startswith("stale; reason=circuit_open")
    assert stale.normalized.data == {"id": 1, "name": "Ada"}  # type: ignore[attr-defined]


async def test_an_answer_the_async_client_stored_serves_the_sync_session(upstream: Upstream) -> None:
    upstream.script("/users/2", Reply(body=b'{"id": 2}', headers={"Content-Type": "application/json"}))
    store = ResponseStore.memory()
    policy = Degrade(store=store)
    breaker = _breaker()
    async with AsyncResilientClient(base_url=upstream.url, retry=0, breaker=breaker, degrade=policy) as c:
        fresh = await c.get("/users/2", params={"lang": "en"})
        assert fresh.normalized.degraded is None  # type: ignore[attr-defined]
        assert "Resilient-Degraded" not in fresh.headers
    upstream.script("/users/2", Reply(status=503, body=b"down"))
    session = rs.ResilientSession(base_url=upstream.url, retry=0, breaker=breaker, degrade=policy)
    stale = session.get("/users/2", params={"lang": "en"})
    session.close()
    assert stale.json() == {"id": 2}
    assert stale.normalized.degraded.reason == "status"  # type: ignore[attr-defined]
    assert upstream.count("/users/2") == 1  # since it failed: the session's one call


async def test_a_failure_status_is_answered_stale_and_the_failed_response_closed(upstream: Upstream) -> None:
    upstream.script("/s", Reply(body=b'{"v": 1}'), Reply(status=502, body=b"bad gateway"))
    policy = Degrade(store=ResponseStore.memory())
    async with AsyncResilientClient(retry=0, breaker=False, degrade=policy, raise_for_status=True) as c:
        assert (await c.get(upstream.url + "/s")).json() == {"v": 1}
        stale = await c.get(upstream.url + "/s")  # no HTTPXServerError: the stale answer is a 200
    assert stale.json() == {"v": 1}
    assert stale.normalized.degraded.status == 502  # type: ignore[attr-defined]
    assert upstream.count("/s") == 2


async def test_a_refused_connection_gets_the_fallback_and_a_post_never_does() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    policy = Degrade(store=ResponseStore.memory(), fallback={"items": []})
    async with AsyncResilientClient(base_url=url, retry=0, breaker=False, degrade=policy) as c:
        answer_ = await c.get("/items")
        with pytest.raises(HTTPXConnectError):
            await c.post("/items", json={})
    assert answer_.json() == {"items": []}
    info = answer_.normalized.degraded  # type: ignore[attr-defined]
    assert info.kind == "fallback" and info.reason == "connection"


async def test_a_call_passing_allow_stale_false_gets_the_error(upstream: Upstream) -> None:
    upstream.script("/u", Reply(body=b'{"u": 1}'))
    upstream.script("/other", Reply(status=503))
    policy = Degrade(store=ResponseStore.memory())
    async with AsyncResilientClient(base_url=upstream.url, retry=0, breaker=_breaker(), degrade=policy) as c:
        await c.get("/u")
        await c.get("/other")
        with pytest.raises(HTTPXCircuitOpen):
            await c.get("/u", allow_stale=False)
        with pytest.raises(HTTPXCircuitOpen):
            await c.request("GET", "/u", allow_stale=False)
        assert (await c.get("/u")).normalized.degraded.kind == "stale"  # type: ignore[attr-defined]
    assert upstream.count("/u") == 1
    upstream.script("/v", Reply(body=b'{"v": 1}'), Reply(status=502))
    with ResilientClient(base_url=upstream.url, retry=0, breaker=False, degrade=policy) as sync_client:
        assert sync_client.get("/v").status_code == 200  # kept
        assert sync_client.get("/v", allow_stale=False).status_code == 502  # the failure status, as is
        assert sync_client.get("/v").normalized.degraded.status == 502  # type: ignore[attr-defined]


async def test_without_a_policy_the_error_is_raised(upstream: Upstream) -> None:
    upstream.script("/x", Reply(status=503))
    async with AsyncResilientClient(retry=0, breaker=_breaker()) as c:
        await c.get(upstream.url + "/x")
        with pytest.raises(HTTPXCircuitOpen):
            await c.get(upstream.url + "/x")


def test_the_sync_client_answers_stale_on_an_open_circuit(upstream: Upstream) -> None:
    upstream.script("/u", Reply(body=b'{"u": 1}'))
    upstream.script("/other", Reply(status=503))
    policy = Degrade(store=ResponseStore.memory())
    with ResilientClient(base_url=upstream.url, retry=0, breaker=_breaker(), degrade=policy) as c:
        assert c.get("/u").json() == {"u": 1}
        c.get("/other")
        stale = c.get("/u")
    assert stale.json() == {"u": 1}
    assert stale.normalized.degraded.reason == "circuit_open"  # type: ignore[attr-defined]
    assert upstream.count("/u") == 1


# -- max_response_size ---------------------------------------------------------------------------------


async def test_a_body_past_the_limit_is_refused_unread_and_not_retried(upstream: Upstream) -> None:
    url = upstream.script("/big", Reply(body=b"x" * 5000, headers={"Content-Type": "text/plain"}))
    async with AsyncResilientClient(max_response_size=1000, retry=RetryPolicy(3, backoff_factor=0)) as c:
        with pytest.raises(HTTPXResponseTooLarge) as caught:
            await c.get(url)
    error = caught.value
    assert isinstance(error, MalformedResponseError) and isinstance(error, httpx.DecodingError)
    assert error.code == "body_too_large" and error.details == {"limit": 1000}
    assert upstream.count("/big") == 1


async def test_the_limit_counts_decoded_bytes(upstream: Upstream) -> None:
    # 100 kB of zeros is ~100 bytes of gzip on the wire.
    packed = gzip.compress(b"0" * 100_000)
    assert len(packed) < 1000
    url = upstream.script("/gz", Reply(body=packed, headers={"Content-Encoding": "gzip"}))
    async with AsyncResilientClient(max_response_size=10_000) as c:
        with pytest.raises(HTTPXResponseTooLarge):
            await c.get(url)
    with ResilientClient(max_response_size=10_000) as sync_client, pytest.raises(HTTPXResponseTooLarge):
        sync_client.get(url)
    assert upstream.count("/gz") == 2


async def test_a_body_within_the_limit_and_a_streamed_one_are_the_caller_s(upstream: Upstream) -> None:
    url = upstream.script("/ok", Reply(body=b'{"n": "' + b"y" * 900 + b'"}'))
    async with AsyncResilientClient(max_response_size=1000) as c:
        assert len((await c.get(url)).content) == 909
        async with c.stream("GET", url) as streamed:
            assert len(await streamed.aread()) == 909
    with pytest.raises(ValueError, match="max_response_size"):
        AsyncResilientClient(max_response_size=-1)


# -- credentials bound to the integration's origins ----------------------------------------------------

KEY = "k3y+4a/7f=1c%9e:2d@x y"
TOKEN = "tok-3c5e/7a9b+1d="
USER = "svc:integration"
PASSWORD = "pw 6f0b/2d+4e=8a%"
CLIENT_SECRET = "cs-1e3a/5c7f+9b="


def _log(server: RawServer) -> str:
    with server.lock:
        received = list(server.received)
    return "\n\n".join(
        f"{r.method} {r.path}\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items()) + "\n\n"
        f"{r.body.decode('latin-1')}"
        for r in received
    )


def _routes(b: RawServer) -> Callable[[Conn, Received], bool]:
    """Server A: ``/token`` issues an OAuth2 token, ``/hop`` redirects to B, anything else answers 200."""

    def run(conn: Conn, received: Received) -> bool:
        if received.path.startswith("/token"):
            body = json.dumps({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})
            conn.send(response(200, body.encode()))
        elif received.path.startswith("/hop"):
            conn.send(response(302, b"", headers={"Location": f"{b.url}/landed"}))
        else:
            conn.send(response(200))
        return True

    return run


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RawServer, RawServer]]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the token endpoint is plain http on loopback
    with RawServer() as a, RawServer() as b:
        a.script(_routes(b))
        b.script(answer())
        yield a, b


AUTHS: dict[str, tuple[Callable[[str], Any], list[tuple[str, str | None]]]] = {
    "api key header": (lambda a: APIKeyAuth(KEY), [(KEY, None)]),
    "api key in the query": (lambda a: APIKeyAuth(KEY, query="api_key"), [(KEY, None)]),
    "bearer": (lambda a: BearerAuth(TOKEN), [(TOKEN, None)]),
    "basic": (lambda a: BasicAuth(USER, PASSWORD), [(PASSWORD, USER)]),
    "a (user, password) tuple": (lambda a: (USER, PASSWORD), [(PASSWORD, USER)]),
    "httpx.BasicAuth": (lambda a: httpx.BasicAuth(USER, PASSWORD), [(PASSWORD, USER)]),
    "oauth2": (
        lambda a: OAuth2ClientCredentials(f"{a}/token", "client-7", CLIENT_SECRET),
        [(TOKEN, None), (CLIENT_SECRET, "client-7")],
    ),
}


@pytest.mark.parametrize("name", list(AUTHS))
async def test_a_second_origin_never_receives_the_credential(
    servers: tuple[RawServer, RawServer], name: str
) -> None:
    a, b = servers
    build, secrets = AUTHS[name]
    async with AsyncResilientClient(base_url=a.url, auth=build(a.url), retry=0, follow_redirects=True) as c:
        # To B: a GET with a query, a form POST, a JSON POST, and a redirect from A to B.
        assert (await c.get(f"{b.url}/items?page=2")).status_code == 200
        assert (await c.post(f"{b.url}/form", data={"field": "value"})).status_code == 200
        assert (await c.post(f"{b.url}/json", json={"field": "value"})).status_code == 200
        assert (await c.get("/hop")).status_code == 200
        # To A: the credential is sent (the assertions on B are not vacuous).
        assert (await c.get("/items")).status_code == 200
    on_b = _log(b)
    assert b.count == 4
    for secret, user in secrets:
        assert leaks(on_b, secret, user) == [], f"{name}: found on the second origin"
    assert "authorization" not in on_b.lower()
    assert any(leaks(_log(a), secret, user) for secret, user in secrets), f"{name}: never sent to A"


def test_the_sync_client_binds_its_credentials_too(servers: tuple[RawServer, RawServer]) -> None:
    a, b = servers
    with ResilientClient(base_url=a.url, auth=APIKeyAuth(KEY), retry=0) as c:
        assert c.get(f"{b.url}/x").status_code == 200
        assert c.get("/x").status_code == 200
    assert leaks(_log(b), KEY) == []
    assert leaks(_log(a), KEY) != []


async def test_allowed_origins_receive_the_credential(servers: tuple[RawServer, RawServer]) -> None:
    a, b = servers
    registry.register("files", base_url=a.url, auth=APIKeyAuth(KEY), allowed_origins=[b.url], retry=0)
    async with AsyncResilientClient.for_integration("files") as c:
        assert c.allowed_origins == (f"http://127.0.0.1:{b.port}",)
        assert (await c.get(f"{b.url}/download")).status_code == 200
    assert leaks(_log(b), KEY) != []


async def test_a_credential_given_to_one_call_goes_where_the_call_goes(
    servers: tuple[RawServer, RawServer],
) -> None:
    a, b = servers
    async with AsyncResilientClient(base_url=a.url, retry=0) as c:
        assert (await c.get(f"{b.url}/x", auth=(USER, PASSWORD))).status_code == 200
    assert leaks(_log(b), PASSWORD, USER) != []


async def test_a_slot_taken_by_a_call_the_open_circuit_refuses_is_given_back(upstream: Upstream) -> None:
    url = upstream.script("/q", Reply(status=503))
    limit = RateLimit(calls=1, per=1, store=MemoryStore())
    async with AsyncResilientClient(rate_limit=limit, retry=False, breaker=_breaker()) as c:
        assert (await c.get(url)).status_code == 503  # slot 0; the circuit opens
        with pytest.raises(HTTPXCircuitOpen):
            await c.get(url)  # waits ~1 s for slot 1, then the circuit refuses it: nothing sent
    assert upstream.count("/q") == 1
    # Slot 1 was given back: the next call need not wait for slot 2.
    assert limit.acquire(limit.key_for(url), max_wait=1.5).wait < 0.2
