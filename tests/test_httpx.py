"""The httpx transports and clients under the ecosystem's mock (respx), and their errors."""

from __future__ import annotations

import pickle

import httpx
import pytest
import requests
import respx

from resilient_session import RetryPolicy
from resilient_session import errors as ours
from resilient_session.auth import APIKeyAuth
from resilient_session.httpx import (
    AsyncResilientClient,
    AsyncResilientTransport,
    HTTPXAuth,
    HTTPXConnectError,
    HTTPXRateLimitedError,
    HTTPXReadTimeout,
    HTTPXServerError,
    ResilientClient,
    httpx_timeout,
)
from resilient_session.httpx.errors import context, status_error_for

FAST = RetryPolicy(backoff_factor=0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- respx: the mock sits below the resilient transport, so it sees every retry --------------------


@pytest.mark.anyio
async def test_respx_sees_each_retry_of_the_async_client() -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get("https://api.example.com/v1/users").mock(
            side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200, json={"id": 1})]
        )
        async with AsyncResilientClient(base_url="https://api.example.com/v1", retry=FAST) as c:
            response = await c.get("users")
    assert route.call_count == 3
    assert response.json() == {"id": 1}
    assert response.normalized.data == {"id": 1}  # type: ignore[attr-defined]


def test_respx_sees_each_retry_of_the_sync_client() -> None:
    with respx.mock() as mock:
        route = mock.get("https://api.example.com/x").mock(
            side_effect=[httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200)]
        )
        with ResilientClient(retry=FAST) as c:
            assert c.get("https://api.example.com/x").status_code == 200
    assert route.call_count == 2


@pytest.mark.anyio
async def test_respx_connect_errors_are_retried_and_typed() -> None:
    with respx.mock() as mock:
        route = mock.get("https://api.example.com/x").mock(side_effect=httpx.ConnectError("refused"))
        async with AsyncResilientClient(retry=RetryPolicy(2, backoff_factor=0), breaker=False) as c:
            with pytest.raises(httpx.ConnectError) as caught:
                await c.get("https://api.example.com/x")
    assert route.call_count == 3
    assert isinstance(caught.value, HTTPXConnectError)


@pytest.mark.anyio
async def test_post_is_not_retried_without_an_idempotency_key_and_is_with_one() -> None:
    with respx.mock() as mock:
        route = mock.post("https://api.example.com/orders").mock(return_value=httpx.Response(503))
        async with AsyncResilientClient(retry=FAST, breaker=False) as c:
            await c.post("https://api.example.com/orders", json={"n": 1})
            assert route.call_count == 1
            await c.post("https://api.example.com/orders", json={"n": 1}, headers={"Idempotency-Key": "k1"})
    assert route.call_count == 1 + 4


@pytest.mark.anyio
async def test_read_timeouts_are_not_retried_unless_asked() -> None:
    with respx.mock() as mock:
        route = mock.get("https://api.example.com/x").mock(side_effect=httpx.ReadTimeout("slow"))
        async with AsyncResilientClient(retry=FAST, breaker=False) as c:
            with pytest.raises(HTTPXReadTimeout):
                await c.get("https://api.example.com/x")
        assert route.call_count == 1
        async with AsyncResilientClient(retry=FAST.new(retry_read_timeouts=True), breaker=False) as c:
            with pytest.raises(HTTPXReadTimeout):
                await c.get("https://api.example.com/x")
    assert route.call_count == 1 + 4


@pytest.mark.anyio
async def test_a_transport_given_to_the_client_is_wrapped() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(502 if len(calls) < 2 else 200)

    async with AsyncResilientClient(transport=httpx.MockTransport(handler), retry=FAST) as c:
        assert isinstance(c.resilient_transport, AsyncResilientTransport)
        assert (await c.get("https://api.example.com/")).status_code == 200
    assert len(calls) == 2


@pytest.mark.anyio
async def test_the_transport_alone_under_a_plain_httpx_client() -> None:
    statuses = iter([503, 200])
    mock = httpx.MockTransport(lambda request: httpx.Response(next(statuses)))
    async with httpx.AsyncClient(transport=AsyncResilientTransport(mock, retry=FAST)) as c:
        response = await c.get("https://api.example.com/")
    assert response.status_code == 200
    assert response.attempts == 2  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_raise_for_status_rate_limited_carries_retry_after() -> None:
    with respx.mock() as mock:
        mock.get("https://api.example.com/x").mock(
            return_value=httpx.Response(429, headers={"Retry-After": "120"})
        )
        async with AsyncResilientClient(retry=False, raise_for_status=True) as c:
            with pytest.raises(httpx.HTTPStatusError) as caught:
                await c.get("https://api.example.com/x")
    error = caught.value
    assert isinstance(error, HTTPXRateLimitedError)
    assert error.retry_after == 120


def test_api_key_auth_object_is_shared_not_copied() -> None:
    key = APIKeyAuth("sk_test_123", header="X-API-Key")
    bridge = HTTPXAuth(key)
    assert bridge.auth is key
    request = httpx.Request("GET", "https://api.example.com/x")
    flow = bridge.sync_auth_flow(request)
    sent = next(flow)
    assert sent.headers["X-API-Key"] == "sk_test_123"
    assert "sk_test_123" not in repr(bridge)


# -- errors: ours and httpx's at once ------------------------------------------------------------


def test_errors_are_ours_requests_and_httpx() -> None:
    request = httpx.Request("GET", "https://api.example.com/x?api_key=sk_live_999")
    error = HTTPXReadTimeout("timed out", **context(request, attempts=2))
    for cls in (httpx.ReadTimeout, httpx.TimeoutException, ours.APIReadTimeout, requests.ReadTimeout):
        assert isinstance(error, cls)
    seen: object = error.request  # httpx's request (requests' stubs type the attribute as theirs)
    assert seen is request
    assert "sk_live_999" not in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.attempts, str(copy)) == (HTTPXReadTimeout, 2, str(error))


def test_status_error_is_httpx_status_error() -> None:
    request = httpx.Request("GET", "https://api.example.com/x")
    response = httpx.Response(503, request=request)
    error = status_error_for(response)
    assert isinstance(error, HTTPXServerError)
    theirs: BaseException = error
    assert isinstance(theirs, httpx.HTTPStatusError)
    assert error.response is response and error.status == 503
    assert status_error_for(httpx.Response(204, request=request)) is None


@pytest.mark.parametrize(
    ("given", "connect", "read"),
    [(5, 5, 5), ((1.5, 20), 1.5, 20), (None, None, None)],
)
def test_session_timeouts_read_as_httpx_timeouts(given: object, connect: object, read: object) -> None:
    timeout = httpx_timeout(given)
    if given is None:
        assert timeout is None
    else:
        assert (timeout.connect, timeout.read) == (connect, read)
