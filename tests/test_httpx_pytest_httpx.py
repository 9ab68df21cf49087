"""The httpx clients under pytest-httpx, the other mock of the httpx ecosystem: it replaces httpx's own
transports, below ours, so it sees every retry and every header our auth sets.

pytest-httpx pins one httpx minor version at a time; CI runs this file in an environment where
pytest-httpx chose the httpx it supports (see ``.ci/run``)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from resilient_session import RetryPolicy
from resilient_session.auth import APIKeyAuth
from resilient_session.httpx import (
    AsyncResilientClient,
    HTTPXConnectError,
    HTTPXDeadlineExceeded,
    HTTPXReadTimeout,
    HTTPXServerError,
    ResilientClient,
)

pytest.importorskip("pytest_httpx", reason="pytest-httpx runs in its own CI environment")
# pytest_httpx.HTTPXMock; not importable where the rest of the suite is type-checked.
HTTPXMock = Any

URL = "http://127.0.0.1:9/v1/users"
FAST = RetryPolicy(backoff_factor=0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_each_retry_of_the_sync_client_reaches_the_mock(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, status_code=503)
    httpx_mock.add_response(url=URL, status_code=503)
    httpx_mock.add_response(url=URL, json={"id": 1})
    with ResilientClient(retry=FAST) as client:
        response = client.get(URL)
    assert response.status_code == 200
    assert response.normalized.data == {"id": 1}  # type: ignore[attr-defined]
    assert len(httpx_mock.get_requests()) == 3


@pytest.mark.anyio
async def test_each_retry_of_the_async_client_reaches_the_mock(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, status_code=429, headers={"Retry-After": "0"})
    httpx_mock.add_response(url=URL, json={"id": 2})
    async with AsyncResilientClient(retry=FAST) as client:
        response = await client.get(URL)
    assert response.normalized.data == {"id": 2}  # type: ignore[attr-defined]
    assert [r.method for r in httpx_mock.get_requests()] == ["GET", "GET"]


@pytest.mark.anyio
async def test_the_last_502_is_the_typed_status_error_with_raise_for_status(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, status_code=502, is_reusable=True)
    async with AsyncResilientClient(retry=RetryPolicy(total=2, backoff_factor=0), raise_for_status=True) as c:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await c.get(URL)
    assert isinstance(caught.value, HTTPXServerError)
    assert len(httpx_mock.get_requests()) == 3


@pytest.mark.anyio
async def test_connect_errors_are_retried_then_typed(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=URL, is_reusable=True)
    async with AsyncResilientClient(retry=RetryPolicy(total=2, backoff_factor=0)) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(URL)
    assert isinstance(caught.value, HTTPXConnectError)
    assert len(httpx_mock.get_requests()) == 3


def test_a_read_timeout_of_a_post_is_not_retried(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=URL)
    with ResilientClient(retry=FAST) as client, pytest.raises(httpx.ReadTimeout) as caught:
        client.post(URL, json={"name": "x"})
    assert isinstance(caught.value, HTTPXReadTimeout)
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.anyio
async def test_the_mock_sees_the_api_key_our_auth_sets_and_the_error_never_shows_it(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(url=URL, status_code=503, is_reusable=True)
    auth = APIKeyAuth("sk-live-0123456789", header="X-API-Key")
    async with AsyncResilientClient(
        base_url="http://127.0.0.1:9/v1", auth=auth, retry=RetryPolicy(total=1, backoff_factor=0)
    ) as client:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            (await client.get("users")).raise_for_status()
    sent = httpx_mock.get_requests()
    assert [r.headers["X-API-Key"] for r in sent] == ["sk-live-0123456789"] * 2
    assert "sk-live-0123456789" not in str(caught.value)


@pytest.mark.anyio
async def test_a_slow_mocked_answer_ends_by_the_deadline(httpx_mock: HTTPXMock) -> None:
    import anyio

    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(2.0)
        return httpx.Response(200)

    httpx_mock.add_callback(slow, url=URL)
    async with AsyncResilientClient(retry=FAST, deadline=0.2) as client:
        started = time.monotonic()
        with pytest.raises(HTTPXDeadlineExceeded):
            await client.get(URL)
    assert 0.2 <= time.monotonic() - started < 0.2 + 0.05
