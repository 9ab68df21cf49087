"""Auth, integrations and the sync httpx client against loopback servers that count what they received."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest

import resilient_session as rs
from resilient_session import CircuitBreaker, RetryPolicy, registry
from resilient_session.auth import APIKeyAuth, BearerAuth, OAuth2ClientCredentials
from resilient_session.httpx import (
    AsyncResilientClient,
    HTTPXAuthenticationError,
    HTTPXCircuitOpen,
    HTTPXDeadlineExceeded,
    HTTPXReadTimeout,
    HTTPXTokenEndpointError,
    ResilientClient,
)
from tests.integration.rawserver import RawServer, answer, cut_mid_body, drip_body, hang
from tests.integration.upstream import Reply, Upstream

SECRET = "sk_live_4f9a8b7c6d5e"
CLIENT_SECRET = "cs_9d8c7b6a5f4e"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server() -> Iterator[RawServer]:
    with RawServer() as srv:
        yield srv


def _token(value: str, *, delay: float = 0.0) -> Reply:
    body = json.dumps({"access_token": value, "token_type": "bearer", "expires_in": 3600}).encode()
    return Reply(200, body, {"Content-Type": "application/json"}, delay=delay)


@pytest.fixture
def oauth(monkeypatch: pytest.MonkeyPatch, upstream: Upstream) -> OAuth2ClientCredentials:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the token endpoint is plain http on loopback
    upstream.script("/token", _token("tok-1"), _token("tok-2"))
    return OAuth2ClientCredentials(upstream.url + "/token", "client-1", CLIENT_SECRET)


# -- auth ----------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_api_key_is_sent_and_dropped_on_a_redirect_to_another_origin(server: RawServer) -> None:
    with RawServer() as other:
        other.script(answer(200))
        elsewhere = other.url.replace("127.0.0.1", "localhost") + "/landing"
        server.script(answer(302, b"", headers={"Location": elsewhere}))
        async with AsyncResilientClient(auth=APIKeyAuth(SECRET, header="X-API-Key")) as c:
            response = await c.get(server.url + "/start", follow_redirects=True)
        assert response.status_code == 200
        assert server.received[0].headers["x-api-key"] == SECRET
        assert other.count == 1
        assert "x-api-key" not in other.received[0].headers


@pytest.mark.anyio
async def test_api_key_in_the_query_is_dropped_on_a_redirect_to_another_origin(server: RawServer) -> None:
    with RawServer() as other:
        other.script(answer(200))
        elsewhere = other.url.replace("127.0.0.1", "localhost") + "/landing?page=2&api_key=" + SECRET
        server.script(answer(302, b"", headers={"Location": elsewhere}))
        async with AsyncResilientClient(auth=APIKeyAuth(SECRET, query="api_key")) as c:
            await c.get(server.url + "/start", follow_redirects=True)
        assert SECRET in server.received[0].path
        assert other.received[0].path == "/landing?page=2"


@pytest.mark.anyio
async def test_oauth2_one_token_fetch_for_many_concurrent_tasks(
    server: RawServer, upstream: Upstream, oauth: OAuth2ClientCredentials
) -> None:
    upstream.script("/token", _token("tok-1", delay=0.2))  # slow: every task arrives while it runs
    server.script(answer(200))
    async with AsyncResilientClient(auth=oauth) as c, anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(c.get, server.url + "/data")
    assert upstream.count("/token") == 1  # single flight across the 20 tasks
    assert server.count == 20
    assert {r.headers["authorization"] for r in server.received} == {"Bearer tok-1"}


@pytest.mark.anyio
async def test_oauth2_401_renews_once_and_resends(
    server: RawServer, upstream: Upstream, oauth: OAuth2ClientCredentials
) -> None:
    server.script(answer(401), answer(200, b'{"ok": 2}'))
    async with AsyncResilientClient(auth=oauth) as c:
        response = await c.get(server.url + "/data")
    assert response.json() == {"ok": 2}
    assert upstream.count("/token") == 2
    assert [r.headers["authorization"] for r in server.received] == ["Bearer tok-1", "Bearer tok-2"]


@pytest.mark.anyio
async def test_oauth2_second_401_raises_authentication_error(
    server: RawServer, upstream: Upstream, oauth: OAuth2ClientCredentials
) -> None:
    server.script(answer(401))
    async with AsyncResilientClient(auth=oauth) as c:
        with pytest.raises(HTTPXAuthenticationError) as caught:
            await c.get(server.url + "/data")
    error: BaseException = caught.value
    assert isinstance(error, httpx.HTTPStatusError)
    assert server.count == 2


@pytest.mark.anyio
async def test_token_endpoint_down_fails_typed_and_sends_nothing_to_the_api(
    server: RawServer, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    server.script(answer(200))
    auth = OAuth2ClientCredentials(f"http://127.0.0.1:{closed_port}/token", "client-1", CLIENT_SECRET)
    async with AsyncResilientClient(auth=auth) as c:
        with pytest.raises(httpx.ConnectError) as caught:
            await c.get(server.url + "/data")
    error: BaseException = caught.value
    assert isinstance(error, HTTPXTokenEndpointError)
    assert isinstance(error, rs.errors.TokenEndpointError)
    assert CLIENT_SECRET not in str(error)
    assert server.count == 0


@pytest.mark.anyio
async def test_token_endpoint_that_hangs_is_bounded_by_the_call_deadline(
    server: RawServer, upstream: Upstream, oauth: OAuth2ClientCredentials
) -> None:
    upstream.routes["/token"] = [Reply(hang=True)]
    server.script(answer(200))
    async with AsyncResilientClient(auth=oauth, deadline=0.5) as c:
        started = time.monotonic()
        with pytest.raises(HTTPXDeadlineExceeded):
            await c.get(server.url + "/data")
    assert time.monotonic() - started < 0.5 + 0.05
    assert server.count == 0


@pytest.mark.anyio
async def test_sync_session_and_async_client_share_one_oauth2_token(
    server: RawServer, upstream: Upstream, oauth: OAuth2ClientCredentials
) -> None:
    server.script(answer(200))
    session = rs.ResilientSession(auth=oauth)
    session.get(server.url + "/sync")
    async with AsyncResilientClient(auth=oauth) as c:
        await c.get(server.url + "/async")
    session.close()
    assert upstream.count("/token") == 1
    assert [r.headers["authorization"] for r in server.received] == ["Bearer tok-1"] * 2


def test_sync_client_bearer_auth(server: RawServer) -> None:
    server.script(answer(200))
    with ResilientClient(auth=BearerAuth(SECRET)) as c:
        c.get(server.url + "/x")
    assert server.received[0].headers["authorization"] == f"Bearer {SECRET}"


# -- integrations --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_registered_integration_gives_sessions_and_clients_one_circuit(server: RawServer) -> None:
    registry.register(
        "billing",
        base_url=server.url + "/v1",
        retry=False,
        breaker=CircuitBreaker(consecutive_failures=2, routes=False),
        headers={"X-Team": "payments"},
    )
    server.script(answer(503))
    session = registry.session("billing")
    for _ in range(2):
        assert session.get("invoices").status_code == 503
    session.close()
    async with AsyncResilientClient.for_integration("billing") as c:
        with pytest.raises(HTTPXCircuitOpen):
            await c.get("invoices")
        assert c.resilient_transport.policies.breaker is not None
        assert c.resilient_transport.policies.breaker.name == "billing"
    with ResilientClient.for_integration("billing") as sync_client, pytest.raises(HTTPXCircuitOpen):
        sync_client.get("invoices")
    assert server.count == 2
    assert all(r.headers["x-team"] == "payments" and r.path == "/v1/invoices" for r in server.received)


@pytest.mark.anyio
async def test_integration_timeout_and_retry_reach_the_client(server: RawServer) -> None:
    registry.register("slowapi", base_url=server.url, timeout=(1.0, 0.3), retry=RetryPolicy(0))
    server.script(hang())
    async with AsyncResilientClient.for_integration("slowapi") as c:
        assert (c.timeout.connect, c.timeout.read) == (1.0, 0.3)
        started = time.monotonic()
        with pytest.raises(HTTPXReadTimeout):
            await c.get("/x")
    assert 0.25 <= time.monotonic() - started < 0.3 + 0.2
    assert server.count == 1


# -- the sync client -----------------------------------------------------------------------------------


def test_sync_client_retries_5xx_and_broken_bodies(server: RawServer) -> None:
    server.script(answer(503), cut_mid_body(), answer(200, b'{"n": 1}'))
    with ResilientClient(retry=RetryPolicy(backoff_factor=0.01)) as c:
        response = c.get(server.url + "/x")
    assert response.json() == {"n": 1}
    assert server.count == 3
    assert response.attempts == 3  # type: ignore[attr-defined]
    assert response.normalized.data == {"n": 1}  # type: ignore[attr-defined]


def test_sync_client_deadline_ends_a_dripping_body(server: RawServer) -> None:
    server.script(drip_body(0.05))
    with ResilientClient(deadline=0.5) as c:
        started = time.monotonic()
        with pytest.raises(HTTPXDeadlineExceeded):
            c.get(server.url + "/drip")
    assert 0.5 <= time.monotonic() - started < 0.5 + 0.1
    assert server.count == 1


def test_sync_client_deadline_ends_a_hanging_call(server: RawServer) -> None:
    server.script(hang())
    with ResilientClient(deadline=0.4) as c:
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            c.get(server.url + "/hang")
    assert 0.4 <= time.monotonic() - started < 0.4 + 0.1
