"""The httpx transports and clients under the ecosystem's mock (respx), and their errors."""

from __future__ import annotations

import asyncio
import inspect
import pickle
from unittest import mock

import anyio
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
    HTTPXDeadlineExceeded,
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


# -- options checked as the session checks them --------------------------------------------------------


def test_options_are_refused_as_the_session_refuses_them() -> None:
    with pytest.raises(TypeError, match="degrade"):
        ResilientClient(degrade=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_response_size"):
        ResilientClient(max_response_size=True)
    with pytest.raises(ValueError, match="allowed_origins"):
        ResilientClient(base_url="https://api.example.com", allowed_origins=["https://x.example.com/path"])
    with pytest.raises(TypeError, match="rate_limit"):
        AsyncResilientClient(rate_limit="fast")  # type: ignore[arg-type]


def test_bound_auth_shows_its_origins_never_the_secret() -> None:
    secret = "k-0b1c2d3e4f"
    with ResilientClient(base_url="https://api.example.com/v1", auth=APIKeyAuth(secret)) as c:
        text = repr(c.auth)
    assert "https://api.example.com:443" in text
    assert secret not in text


@respx.mock
def test_a_quota_refusal_is_ours_and_httpx_s_and_nothing_reaches_the_mock() -> None:
    from resilient_session.httpx import HTTPXQuotaExceeded
    from resilient_session.policies import RateLimit
    from resilient_session.stores import MemoryStore

    route = respx.get("https://api.example.com/q").mock(return_value=httpx.Response(200))
    limit = RateLimit(calls=1, per=10, store=MemoryStore())
    with ResilientClient(rate_limit=limit, deadline=1.0) as c:
        c.get("https://api.example.com/q")
        with pytest.raises(httpx.TransportError) as caught:
            c.get("https://api.example.com/q")
    assert isinstance(caught.value, HTTPXQuotaExceeded)
    assert isinstance(caught.value, ours.QuotaExceededError)
    assert "api.example.com" in str(caught.value)
    assert route.call_count == 1


# -- the verbs: httpx's, plus the call's deadline -----------------------------------------------------

VERBS = ["get", "head", "options", "delete", "post", "put", "patch"]


@pytest.mark.anyio
@pytest.mark.parametrize("verb", VERBS)
async def test_each_verb_of_both_clients_sends_its_method_and_takes_a_deadline(verb: str) -> None:
    url = "http://127.0.0.1:9/thing"
    with respx.mock() as mock:
        route = mock.route(method=verb.upper(), url=url).mock(return_value=httpx.Response(204))
        async with AsyncResilientClient() as a:
            assert (await getattr(a, verb)(url, deadline=5.0, params={"q": "1"})).status_code == 204
        with ResilientClient() as s:
            assert getattr(s, verb)(url, deadline=5.0, params={"q": "1"}).status_code == 204
    assert [call.request.method for call in route.calls] == [verb.upper()] * 2
    assert all(call.request.url.params["q"] == "1" for call in route.calls)


@pytest.mark.parametrize("verb", ["get", "head", "options", "delete"])
@pytest.mark.parametrize("keyword", ["content", "data", "files", "json"])
def test_verbs_without_a_body_refuse_a_body_as_httpx_does(verb: str, keyword: str) -> None:
    url = "http://127.0.0.1:9/thing"
    with httpx.Client() as plain, pytest.raises(TypeError):
        getattr(plain, verb)(url, **{keyword: {"a": 1}})
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route(url=url).mock(return_value=httpx.Response(200))
        with ResilientClient() as client, pytest.raises(TypeError, match=keyword):
            getattr(client, verb)(url, **{keyword: {"a": 1}})
        async_client = AsyncResilientClient()
        with pytest.raises(TypeError, match=keyword):
            asyncio.run(getattr(async_client, verb)(url, **{keyword: {"a": 1}}))
    assert route.call_count == 0


@pytest.mark.anyio
async def test_a_verb_s_deadline_ends_that_call_alone() -> None:
    url = "http://127.0.0.1:9/slow"
    started: list[float] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        started.append(anyio.current_time())
        await anyio.sleep(1.0)
        return httpx.Response(200)

    with respx.mock(assert_all_called=False) as mock:
        mock.get(url).mock(side_effect=slow)
        async with AsyncResilientClient(retry=False) as client:
            began = anyio.current_time()
            with pytest.raises(HTTPXDeadlineExceeded):
                await client.get(url, deadline=0.1)
            ended = anyio.current_time() - began
    assert len(started) == 1  # sent once, then cancelled by the deadline
    assert 0.1 <= ended < 0.5
    assert client.deadline is None


@pytest.mark.parametrize("verb", [*VERBS, "request", "send"])
def test_async_verbs_are_coroutine_functions_as_httpx_s(verb: str) -> None:
    # Users' tests autospec the client: an awaitable mock needs a coroutine function to copy.
    assert inspect.iscoroutinefunction(getattr(httpx.AsyncClient, verb))
    assert inspect.iscoroutinefunction(getattr(AsyncResilientClient, verb))
    mocked = mock.create_autospec(AsyncResilientClient, instance=True)
    assert isinstance(getattr(mocked, verb), mock.AsyncMock)
    assert not inspect.iscoroutinefunction(getattr(ResilientClient, verb))
