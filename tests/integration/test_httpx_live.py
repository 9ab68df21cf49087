"""The sync suite's failure scenarios against the async httpx client, on loopback servers that count what
they received and how long each call took."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial

import anyio
import httpx
import pytest
import requests

import resilient_session as rs
from resilient_session import CircuitBreaker, RetryBudget, RetryPolicy
from resilient_session import errors as rs_errors
from resilient_session.httpx import (
    AsyncResilientClient,
    HTTPXBodyReadError,
    HTTPXBulkheadFull,
    HTTPXCircuitOpen,
    HTTPXConnectError,
    HTTPXDeadlineExceeded,
    HTTPXIncompleteBody,
    HTTPXPoolTimeout,
    HTTPXReadTimeout,
    HTTPXRetryExhausted,
    HTTPXServerError,
)
from resilient_session.policies import CircuitState
from resilient_session.policies.bulkhead import Bulkhead
from resilient_session.testing.chaos import ChaosServer
from tests.integration.rawserver import (
    RawServer,
    answer,
    cut_mid_body,
    drip_body,
    drip_headers,
    hang,
    reset_before_answer,
)

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(backoff_factor=0.01)
# Cancellation is exact to the event loop's resolution; the promise is deadline + 50 ms.
SLACK = 0.05


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    # The deadline, sleeps, locks and slots are anyio's: each scenario runs under trio too.
    return str(request.param)


@pytest.fixture
def server() -> Iterator[RawServer]:
    with RawServer() as srv:
        yield srv


@pytest.fixture
async def client() -> AsyncIterator[AsyncResilientClient]:
    async with AsyncResilientClient(retry=FAST) as c:
        yield c


# -- failures first ----------------------------------------------------------------------------------


async def test_5xx_is_retried_until_the_policy_stops_and_the_last_answer_returned(
    server: RawServer, client: AsyncResilientClient
) -> None:
    server.script(answer(503))
    response = await client.get(server.url + "/flaky")
    assert response.status_code == 503
    assert server.count == 4  # total=3: one call sends at most four requests
    assert response.attempts == 4  # type: ignore[attr-defined]


async def test_5xx_then_success(server: RawServer, client: AsyncResilientClient) -> None:
    server.script(answer(502), answer(503), answer(200, b'{"id": 7}'))
    response = await client.get(server.url + "/flaky")
    assert (response.status_code, response.json(), server.count) == (200, {"id": 7}, 3)


async def test_raise_on_status_raises_the_httpx_status_error(server: RawServer) -> None:
    server.script(answer(503))
    async with AsyncResilientClient(retry=RetryPolicy(1, backoff_factor=0, raise_on_status=True)) as c:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await c.get(server.url + "/x")
    assert isinstance(caught.value, HTTPXRetryExhausted)
    assert isinstance(caught.value, rs_errors.RetryExhaustedError)
    assert server.count == 2


async def test_raise_for_status_gives_the_typed_error_that_is_httpx_s(server: RawServer) -> None:
    server.script(answer(500))
    async with AsyncResilientClient(raise_for_status=True, retry=FAST) as c:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await c.get(server.url + "/x")
    error = caught.value
    assert isinstance(error, HTTPXServerError) and isinstance(error, rs_errors.ServerError)
    assert error.response.status_code == 500 and error.status == 500
    assert server.count == 1  # 500 is not in the default status_forcelist


async def test_429_waits_for_retry_after(server: RawServer, client: AsyncResilientClient) -> None:
    server.script(answer(429, headers={"Retry-After": "1"}), answer(200))
    started = time.monotonic()
    response = await client.get(server.url + "/limited")
    took = time.monotonic() - started
    assert response.status_code == 200
    assert server.count == 2
    assert 0.95 <= took < 2.5
    gap = server.received[1].at - server.received[0].at
    assert gap >= 0.95


async def test_retry_after_past_the_deadline_is_not_slept(server: RawServer) -> None:
    server.script(answer(429, headers={"Retry-After": "5"}), answer(200))
    async with AsyncResilientClient(retry=FAST, deadline=1.0) as c:
        started = time.monotonic()
        response = await c.get(server.url + "/limited")
    assert response.status_code == 429  # the wait would pass the deadline: the answer is returned now
    assert time.monotonic() - started < 0.5
    assert server.count == 1


async def test_slow_upstream_read_timeout_is_not_retried(server: RawServer) -> None:
    server.script(hang())
    async with AsyncResilientClient(retry=FAST, timeout=httpx.Timeout(5, read=0.3)) as c:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout) as caught:
            await c.get(server.url + "/slow")
    took = time.monotonic() - started
    assert isinstance(caught.value, HTTPXReadTimeout) and isinstance(caught.value, rs_errors.APIReadTimeout)
    assert isinstance(caught.value, requests.ReadTimeout)
    assert server.count == 1
    assert 0.25 <= took < 0.3 + SLACK + 0.2


async def test_deadline_ends_a_hanging_call(server: RawServer) -> None:
    server.script(hang())
    async with AsyncResilientClient(retry=FAST, deadline=0.4) as c:
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException) as caught:
            await c.get(server.url + "/hang")
    took = time.monotonic() - started
    assert isinstance(caught.value, HTTPXDeadlineExceeded)
    assert isinstance(caught.value, rs_errors.DeadlineExceededError)
    assert 0.4 <= took < 0.4 + SLACK
    assert server.count == 1


async def test_per_call_deadline_wins(server: RawServer, client: AsyncResilientClient) -> None:
    server.script(hang())
    started = time.monotonic()
    with pytest.raises(HTTPXDeadlineExceeded):
        await client.get(server.url + "/hang", deadline=0.25)
    assert 0.25 <= time.monotonic() - started < 0.25 + SLACK


@pytest.mark.parametrize(
    "behaviour", [drip_headers(0.05), drip_headers(0.02, bytewise=True), drip_body(0.05)]
)
async def test_drip_ends_within_the_deadline(server: RawServer, behaviour: object) -> None:
    server.script(behaviour)  # type: ignore[arg-type]
    async with AsyncResilientClient(retry=FAST, deadline=0.5) as c:
        started = time.monotonic()
        with pytest.raises(HTTPXDeadlineExceeded):
            await c.get(server.url + "/drip")
    assert 0.5 <= time.monotonic() - started < 0.5 + SLACK
    assert server.count == 1


async def test_deadline_covers_a_streamed_body_read_after_send(server: RawServer) -> None:
    server.script(drip_body(0.05))
    async with AsyncResilientClient(retry=FAST, deadline=0.5) as c:
        started = time.monotonic()
        async with c.stream("GET", server.url + "/drip") as response:
            assert response.status_code == 200
            with pytest.raises(HTTPXDeadlineExceeded):
                await response.aread()
    assert 0.5 <= time.monotonic() - started < 0.5 + SLACK


async def test_deadline_covers_retries_and_backoff(server: RawServer) -> None:
    server.script(answer(503))
    policy = RetryPolicy(total=50, backoff_factor=0.2, full_jitter=False, backoff_max=0.2)
    async with AsyncResilientClient(retry=policy, deadline=0.7) as c:
        started = time.monotonic()
        response = await c.get(server.url + "/x")
    took = time.monotonic() - started
    # It stops when the next wait would pass the deadline, with the last answer.
    assert response.status_code == 503
    assert took < 0.7 + SLACK
    assert 2 <= server.count <= 5


async def test_reset_mid_body_is_retried(server: RawServer, client: AsyncResilientClient) -> None:
    server.script(cut_mid_body(), answer(200, b'{"whole": true}'))
    response = await client.get(server.url + "/body")
    assert response.json() == {"whole": True}
    assert server.count == 2
    assert response.attempts == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("rst", [True, False])
async def test_body_broken_every_time_raises_the_typed_body_error(server: RawServer, rst: bool) -> None:
    server.script(cut_mid_body(rst=rst))
    async with AsyncResilientClient(retry=RetryPolicy(2, backoff_factor=0)) as c:
        with pytest.raises((HTTPXBodyReadError, HTTPXIncompleteBody)) as caught:
            await c.get(server.url + "/body")
    # Both ours and httpx's, which mypy cannot picture: checked through two untyped names.
    ours: BaseException = caught.value
    theirs: BaseException = caught.value
    assert isinstance(ours, rs_errors.IncompleteBodyError)
    assert isinstance(theirs, httpx.ReadError | httpx.RemoteProtocolError)
    assert server.count == 3


async def test_reset_before_answer_is_retried_for_get_not_for_post(server: RawServer) -> None:
    server.script(reset_before_answer())
    async with AsyncResilientClient(retry=RetryPolicy(2, backoff_factor=0)) as c:
        with pytest.raises(httpx.TransportError):
            await c.get(server.url + "/r")
        assert server.count == 3
        server.script(reset_before_answer())
        with pytest.raises(httpx.TransportError) as caught:
            await c.post(server.url + "/r", content=b"order=1")
    error: BaseException = caught.value
    assert isinstance(error, rs_errors.APIConnectionError)
    assert server.count == 1  # POST is not in allowed_methods
    assert server.received[0].body == b"order=1"


async def test_a_body_that_cannot_be_sent_twice_is_sent_once(server: RawServer) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"part-1;"
        yield b"part-2"

    server.script(answer(503))
    async with AsyncResilientClient(retry=RetryPolicy(3, backoff_factor=0, allowed_methods=None)) as c:
        response = await c.post(server.url + "/upload", content=body())
    assert response.status_code == 503
    assert server.count == 1
    assert server.received[0].body == b"part-1;part-2"


async def test_malformed_body_is_reported_by_normalized(
    server: RawServer, client: AsyncResilientClient
) -> None:
    server.script(answer(200, b'{"items": [1, 2,'))
    response = await client.get(server.url + "/bad")
    normalized = response.normalized  # type: ignore[attr-defined]
    assert normalized.ok is False
    assert normalized.error.code == "malformed_response"
    assert normalized.format == "json"
    assert server.count == 1


async def test_refused_connection_is_httpx_connect_error(closed_port: int) -> None:
    async with AsyncResilientClient(retry=RetryPolicy(2, backoff_factor=0), breaker=False) as c:
        with pytest.raises(httpx.ConnectError) as caught:
            await c.get(f"http://127.0.0.1:{closed_port}/x")
    error = caught.value
    assert isinstance(error, HTTPXConnectError) and isinstance(error, rs_errors.APIConnectionError)
    assert error.attempts == 3


async def test_secret_never_in_the_error(server: RawServer) -> None:
    server.script(hang())
    async with AsyncResilientClient(timeout=httpx.Timeout(5, read=0.2)) as c:
        with pytest.raises(HTTPXReadTimeout) as caught:
            await c.get(server.url + "/x", params={"api_key": "sk_live_abcdef123456"})
    assert "sk_live_abcdef123456" not in str(caught.value)
    assert "sk_live_abcdef123456" not in repr(caught.value.args)
    assert "sk_live_abcdef123456" not in str(caught.value.__cause__)


# -- breaker, budget, bulkhead ------------------------------------------------------------------------


async def test_breaker_opens_then_half_open_probe_closes_it(server: RawServer) -> None:
    breaker = CircuitBreaker(consecutive_failures=2, open_wait=0.3)
    server.script(answer(503))
    async with AsyncResilientClient(retry=False, breaker=breaker) as c:
        for _ in range(2):
            assert (await c.get(server.url + "/x")).status_code == 503
        assert server.count == 2
        with pytest.raises(httpx.ConnectError) as caught:
            await c.get(server.url + "/x")
        assert isinstance(caught.value, HTTPXCircuitOpen) and isinstance(
            caught.value, rs_errors.CircuitOpenError
        )
        assert server.count == 2  # refused without a request
        await anyio.sleep(0.35)
        server.script(answer(200))
        assert (await c.get(server.url + "/x")).status_code == 200  # the probe
        assert server.count == 1
        assert breaker.state(breaker.key_for(server.url)).state is CircuitState.CLOSED


async def test_failed_probe_reopens_the_circuit(server: RawServer) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, open_wait=0.2, routes=False)
    server.script(answer(503))
    async with AsyncResilientClient(retry=FAST, breaker=breaker) as c:
        await c.get(server.url + "/x")
        opened = server.count
        await anyio.sleep(0.25)
        assert (await c.get(server.url + "/x")).status_code == 503  # the probe: no retries
        assert server.count == opened + 1
        with pytest.raises(HTTPXCircuitOpen):
            await c.get(server.url + "/x")
    assert breaker.state(breaker.key_for(server.url)).state is CircuitState.OPEN


async def test_calls_ended_by_the_deadline_count_as_failures(server: RawServer) -> None:
    breaker = CircuitBreaker(consecutive_failures=2, routes=False)
    server.script(hang())
    async with AsyncResilientClient(retry=False, breaker=breaker, deadline=0.2) as c:
        for _ in range(2):
            with pytest.raises(HTTPXDeadlineExceeded):
                await c.get(server.url + "/slow")
        with pytest.raises(HTTPXCircuitOpen):
            await c.get(server.url + "/slow")
    assert server.count == 2


async def test_a_call_ended_by_its_deadline_has_given_its_bulkhead_slot_back(server: RawServer) -> None:
    # The next call of the same task, at once, finds the slot free: it is not refused as over the cap.
    bulkhead = Bulkhead(1, max_wait=0.0)
    server.script(drip_body(0.05), answer(200))
    async with AsyncResilientClient(retry=False, bulkhead=bulkhead, breaker=False) as c:
        with pytest.raises(HTTPXDeadlineExceeded):
            await c.get(server.url + "/drip", deadline=0.2)
        assert bulkhead.in_flight(bulkhead.key_for(server.url)) == 0
        assert (await c.get(server.url + "/next")).status_code == 200
    assert [r.path for r in server.received] == ["/drip", "/next"]


async def test_a_probe_ended_by_its_deadline_has_reopened_the_circuit(server: RawServer) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, open_wait=0.2, routes=False)
    server.script(answer(503))
    async with AsyncResilientClient(retry=False, breaker=breaker) as c:
        await c.get(server.url + "/x")
        await anyio.sleep(0.25)
        server.script(drip_body(0.05))
        with pytest.raises(HTTPXDeadlineExceeded):
            await c.get(server.url + "/x", deadline=0.2)  # the probe
        # Told before the caller heard of it: open again, not half-open with a probe still out.
        assert breaker.state(breaker.key_for(server.url)).state is CircuitState.OPEN
        with pytest.raises(HTTPXCircuitOpen):
            await c.get(server.url + "/x")
    assert server.count == 1


async def test_retry_budget_exhaustion_stops_retries(server: RawServer) -> None:
    budget = RetryBudget(capacity=10, retry_cost=5)
    server.script(answer(503))
    async with AsyncResilientClient(
        retry=RetryPolicy(5, backoff_factor=0), budget=budget, breaker=False
    ) as c:
        await c.get(server.url + "/x")
        assert server.count == 3  # the first attempt, then two retries the budget paid for
        server.script(answer(503))
        await c.get(server.url + "/x")
        assert server.count == 1  # no tokens left: no retry at all


async def test_bulkhead_refuses_past_its_cap_and_a_cancelled_task_gives_its_slot_back(
    server: RawServer,
) -> None:
    bulkhead = Bulkhead(1, max_wait=0.1)
    server.script(hang())
    async with AsyncResilientClient(retry=False, bulkhead=bulkhead, breaker=False) as c:
        key = bulkhead.key_for(server.url)
        async with anyio.create_task_group() as tg:
            tg.start_soon(c.get, server.url + "/hold")
            await anyio.sleep(0.2)
            assert bulkhead.in_flight(key) == 1
            started = time.monotonic()
            with pytest.raises(httpx.PoolTimeout) as caught:
                await c.get(server.url + "/second")
            assert isinstance(caught.value, HTTPXBulkheadFull)
            assert 0.1 <= time.monotonic() - started < 0.1 + SLACK
            tg.cancel_scope.cancel()  # the caller cancels the task holding the slot
        assert bulkhead.in_flight(key) == 0
        assert server.count == 1  # the refused call sent nothing
        server.script(answer(200))
        assert (await c.get(server.url + "/after")).status_code == 200


async def test_a_cancelled_probe_gives_its_half_open_slot_back(server: RawServer) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, open_wait=0.2, routes=False)
    server.script(answer(503))
    async with AsyncResilientClient(retry=False, breaker=breaker) as c:
        await c.get(server.url + "/x")
        await anyio.sleep(0.25)
        server.script(hang())
        with anyio.move_on_after(0.2):
            await c.get(server.url + "/x")  # the probe, cancelled by its caller
        assert server.count == 1
        server.script(answer(200))
        # Without the slot back, this call would be refused for the probe lease (30 s).
        assert (await c.get(server.url + "/x")).status_code == 200
    assert breaker.state(breaker.key_for(server.url)).state is CircuitState.CLOSED


async def test_a_sync_session_and_an_async_client_share_one_circuit(server: RawServer) -> None:
    server.script(answer(503))
    sync_session = rs.ResilientSession(retry=False, breaker=CircuitBreaker(consecutive_failures=2))
    async with AsyncResilientClient(retry=False, breaker=CircuitBreaker(consecutive_failures=2)) as c:
        for _ in range(2):
            assert sync_session.get(server.url + "/x").status_code == 503
        with pytest.raises(HTTPXCircuitOpen):
            await c.get(server.url + "/x")
        assert server.count == 2
    sync_session.close()


async def test_failures_seen_by_the_async_client_open_the_circuit_for_the_sync_session(
    server: RawServer,
) -> None:
    server.script(answer(502))
    sync_session = rs.ResilientSession(retry=False, breaker=CircuitBreaker(consecutive_failures=2))
    async with AsyncResilientClient(retry=False, breaker=CircuitBreaker(consecutive_failures=2)) as c:
        for _ in range(2):
            assert (await c.get(server.url + "/x")).status_code == 502
    with pytest.raises(rs_errors.CircuitOpenError):
        sync_session.get(server.url + "/x")
    assert server.count == 2
    sync_session.close()


# -- happy path ---------------------------------------------------------------------------------------


async def test_base_url_is_joined_as_the_session_joins_it(server: RawServer) -> None:
    server.script(answer(200))
    async with AsyncResilientClient(base_url=server.url + "/v1") as c:
        await c.get("users/1")
        await c.get("/users/2")
    session = rs.ResilientSession(base_url=server.url + "/v1")
    session.get("users/1")
    session.get("/users/2")
    session.close()
    paths = [r.path for r in server.received]
    assert paths == ["/v1/users/1", "/v1/users/2", "/v1/users/1", "/v1/users/2"]


async def test_happy_path_normalized_and_one_request(server: RawServer, client: AsyncResilientClient) -> None:
    server.script(answer(200, b'{"id": 1, "name": "x"}'))
    response = await client.get(server.url + "/users/1")
    assert response.normalized.data == {"id": 1, "name": "x"}  # type: ignore[attr-defined]
    assert response.normalized.ok  # type: ignore[attr-defined]
    assert server.count == 1


async def test_default_timeout_is_the_session_s(client: AsyncResilientClient) -> None:
    assert client.timeout.connect == 3.05
    assert client.timeout.read == 30.0


async def test_many_concurrent_calls_with_deadlines_all_end_in_time(server: RawServer) -> None:
    server.script(drip_body(0.05))
    ends: list[float] = []
    async with AsyncResilientClient(retry=False, deadline=0.5, breaker=False) as c:

        async def one() -> None:
            started = time.monotonic()
            with pytest.raises(HTTPXDeadlineExceeded):
                await c.get(server.url + "/drip")
            ends.append(time.monotonic() - started)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(one)
    assert len(ends) == 50
    # The dripping server's 50 threads run in this process and contend for the GIL with the event loop;
    # benchmarks/async.py measures 1,000 calls against a server in another process.
    assert max(ends) < 0.5 + SLACK + 0.25


async def test_failed_and_cancelled_calls_leave_no_reference_cycle_of_their_errors(server: RawServer) -> None:
    # A frame that keeps the error it raised is on that error's traceback: a cycle per failed call, which
    # only the cyclic collector frees, in pauses that stop the loop while many deadlines pass together.
    server.script(answer(200), hang(), hang(), hang())
    with socket.create_server(("127.0.0.1", 0)) as closed:
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/refused"
    limits = httpx.Limits(max_connections=1)
    async with AsyncResilientClient(retry=False, limits=limits) as c:  # the default circuit breaker
        assert (await c.get(server.url + "/warm")).status_code == 200
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            with pytest.raises(HTTPXDeadlineExceeded):  # cancelled while reading the answer
                await c.get(server.url + "/hang", deadline=0.1)
            with pytest.raises(HTTPXConnectError):  # raised by the attempt plan
                await c.get(refused)

            async def queued() -> None:
                with pytest.raises(HTTPXDeadlineExceeded):
                    await c.get(server.url + "/queued", deadline=0.15)

            async with anyio.create_task_group() as tg:  # one holds the pool's connection, one waits
                tg.start_soon(queued)
                tg.start_soon(queued)
            gc.collect()
            ours = [o for o in gc.garbage if isinstance(o, rs_errors.APIError)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert ours == []


async def test_calls_beyond_the_pool_wait_for_a_connection_and_end_by_their_deadline(
    server: RawServer,
) -> None:
    server.script(hang(), hang(), answer(200))
    ends: list[float] = []
    limits = httpx.Limits(max_connections=2)
    async with AsyncResilientClient(retry=False, breaker=False, limits=limits) as c:

        async def waiter() -> None:
            started = time.monotonic()
            with pytest.raises(HTTPXDeadlineExceeded):
                await c.get(server.url + "/waiter", deadline=0.3)
            ends.append(time.monotonic() - started)

        async with anyio.create_task_group() as holders:
            for _ in range(2):
                holders.start_soon(partial(c.get, server.url + "/holder", deadline=5.0))
            await anyio.sleep(0.1)  # both of the pool's connections are held
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(waiter)
            holders.cancel_scope.cancel()
        # Every slot was given back: a call after them gets a connection at once.
        assert (await c.get(server.url + "/ok", deadline=1.0)).status_code == 200
    assert len(ends) == 8
    assert max(ends) < 0.3 + SLACK + 0.1
    assert [r.path for r in server.received] == ["/holder", "/holder", "/ok"]  # no waiter was sent
    assert server.connections == 3


async def test_a_full_pool_raises_pool_timeout_after_the_pool_timeout(server: RawServer) -> None:
    server.script(hang())
    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.2)
    async with (
        AsyncResilientClient(retry=False, breaker=False, limits=limits, timeout=timeout) as c,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(c.get, server.url + "/holder")
        await anyio.sleep(0.1)  # the holder has the pool's only connection
        started = time.monotonic()
        with pytest.raises(HTTPXPoolTimeout) as caught:
            await c.get(server.url + "/waiter")
        took = time.monotonic() - started
        tg.cancel_scope.cancel()
    assert isinstance(caught.value, httpx.PoolTimeout)
    assert 0.15 < took < 0.2 + SLACK + 0.1
    assert [r.path for r in server.received] == ["/holder"]


async def test_events_log_line_and_request_id_are_the_session_s(
    server: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(answer(503), answer(200))
    seen: list[tuple[str, int | None]] = []
    async with AsyncResilientClient(retry=FAST, integration="billing") as c:
        c.events.on_request(lambda e: seen.append(("request", e.attempt)))
        c.events.on_retry(lambda e: seen.append(("retry", e.status)))
        c.events.on_response(lambda e: seen.append(("response", e.status)))
        with caplog.at_level("INFO", logger="resilient_session"):
            await c.get(server.url + "/invoices", params={"api_key": "sk_live_zz9"})
    assert [kind for kind, _ in seen] == ["request", "retry", "response"]
    assert seen[1][1] == 503 and seen[2][1] == 200
    ids = {r.headers.get("x-request-id") for r in server.received}
    assert len(ids) == 1 and None not in ids  # one id for the call, on every attempt
    lines = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert any("-> 200" in line and "2 attempts" in line for line in lines)
    assert all("sk_live_zz9" not in r.getMessage() for r in caplog.records)


# -- the chaos server serves the async client too ------------------------------------------------------


async def test_chaos_server_scenarios_against_the_async_client(chaos_server: ChaosServer) -> None:
    async with AsyncResilientClient(base_url=chaos_server.url, retry=FAST, deadline=2.0) as c:
        assert (await c.get("/fail/503")).status_code == 503
        assert chaos_server.calls("/fail/503") == 4
        with pytest.raises((HTTPXBodyReadError, HTTPXIncompleteBody)):
            await c.get("/truncated")
        assert chaos_server.calls("/truncated") == 4
        normalized = (await c.get("/malformed-json")).normalized  # type: ignore[attr-defined]
        assert normalized.error.code == "malformed_response"
        started = time.monotonic()
        with pytest.raises(HTTPXDeadlineExceeded):
            await c.get("/drip", params={"bytes": 100, "interval_ms": 50}, deadline=0.4)
        assert time.monotonic() - started < 0.4 + SLACK
