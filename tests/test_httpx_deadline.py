"""Ending an asyncio call at its deadline without waiting for its work to unwind
(``resilient_session.httpx._deadline``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from resilient_session.httpx import AsyncResilientClient, HTTPXDeadlineExceeded, _deadline

pytestmark = pytest.mark.anyio
SLACK = 0.05


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _SlowToClose(httpx.AsyncByteStream):
    """A body that sends one byte, then nothing; cut off, its clean-up takes *close_takes* seconds,
    whatever cancels it."""

    def __init__(self, close_takes: float, closed: list[float]) -> None:
        self.close_takes = close_takes
        self.closed = closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            yield b"x"
            await anyio.sleep(30)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(self.close_takes)
            self.closed.append(time.monotonic())


class _SlowToCloseTransport(httpx.AsyncBaseTransport):
    def __init__(self, close_takes: float) -> None:
        self.close_takes = close_takes
        self.closed: list[float] = []
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return httpx.Response(200, stream=_SlowToClose(self.close_takes, self.closed))


async def test_the_caller_hears_of_its_deadline_before_a_slow_clean_up_ends(anyio_backend: str) -> None:
    inner = _SlowToCloseTransport(close_takes=0.3)
    async with AsyncResilientClient(transport=inner, retry=False, breaker=False, deadline=0.2) as c:
        started = time.monotonic()
        with pytest.raises(HTTPXDeadlineExceeded):
            await c.get("http://127.0.0.1:9/slow-to-close")
        took = time.monotonic() - started
        if anyio_backend == "asyncio":
            # The work ends in its own task, the clean-up behind the caller.
            assert 0.2 <= took < 0.2 + SLACK
            assert inner.closed == []
            await anyio.sleep(0.4)
        else:
            # trio: no task outlives its caller; the call ends once its clean-up has.
            assert 0.5 <= took < 0.5 + SLACK
        assert len(inner.closed) == 1  # the body was closed either way, once
    assert inner.sent == 1


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_closing_the_client_waits_for_the_clean_up_of_calls_ended_at_their_deadline() -> None:
    inner = _SlowToCloseTransport(close_takes=0.2)
    async with AsyncResilientClient(transport=inner, retry=False, breaker=False, deadline=0.1) as c:
        with pytest.raises(HTTPXDeadlineExceeded):
            await c.get("http://127.0.0.1:9/slow-to-close")
        assert inner.closed == []
    assert len(inner.closed) == 1  # __aexit__ waited for it
    other_inner = _SlowToCloseTransport(close_takes=0.2)
    other = AsyncResilientClient(transport=other_inner, retry=False, breaker=False, deadline=0.1)
    with pytest.raises(HTTPXDeadlineExceeded):
        await other.get("http://127.0.0.1:9/slow-to-close")
    await other.aclose()
    assert len(other_inner.closed) == 1


async def test_a_caller_cancelled_by_its_own_waits_for_the_clean_up() -> None:
    # Cancelled from outside (not by its deadline), the call gives back what it held before the
    # cancellation goes on: its clean-up has run when the caller's scope ends.
    inner = _SlowToCloseTransport(close_takes=0.1)
    async with AsyncResilientClient(transport=inner, retry=False, breaker=False, deadline=5.0) as c:
        with anyio.move_on_after(0.1) as scope:
            await c.get("http://127.0.0.1:9/slow-to-close")
        assert scope.cancelled_caught
        assert len(inner.closed) == 1


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_wait_for_around_the_call_keeps_its_timeout_error() -> None:
    inner = _SlowToCloseTransport(close_takes=0.05)
    async with AsyncResilientClient(transport=inner, retry=False, breaker=False, deadline=5.0) as c:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.get("http://127.0.0.1:9/slow-to-close"), 0.1)
        assert len(inner.closed) == 1


async def _answers_when_cancelled(answer: str) -> str:
    """Work that finishes its step with *answer* before it sees its cancellation."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        return answer
    return "in time"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_outcome_that_comes_after_the_deadline_goes_to_the_orphan_handler() -> None:
    late: list[str] = []
    assert await _deadline.within(0.05, _answers_when_cancelled("a late answer"), late.append, set()) is None
    await asyncio.sleep(0.01)
    assert late == ["a late answer"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_outcome_reached_as_the_caller_is_cancelled_goes_to_the_orphan_handler() -> None:
    late: list[str] = []
    with anyio.move_on_after(0.05):
        await _deadline.within(5.0, _answers_when_cancelled("an answer nobody waits for"), late.append, set())
    assert late == ["an answer nobody waits for"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_late_streamed_answer_is_closed() -> None:
    response = httpx.Response(200, stream=httpx.ByteStream(b"x"))
    assert not response.is_closed
    _deadline.close_orphan(response)
    await asyncio.sleep(0.01)
    assert response.is_closed


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_error_of_abandoned_work_is_not_logged_as_never_retrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def work() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("raised while unwinding") from None
        return "in time"

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert await _deadline.within(0.05, work(), lambda _: None, set()) is None
        await asyncio.sleep(0.01)
        gc.collect()
    assert "never retrieved" not in caplog.text


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_work_s_outcome_and_error_reach_the_caller() -> None:
    async def answer() -> str:
        await asyncio.sleep(0)
        return "answer"

    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("the work's own error")

    assert await _deadline.within(1.0, answer(), lambda _: None, set()) == "answer"
    with pytest.raises(ValueError, match="the work's own error"):
        await _deadline.within(1.0, fail(), lambda _: None, set())


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_repeated_cancellation_of_the_caller_still_waits_for_the_work() -> None:
    # anyio repeats its cancellation on each turn of the loop until the scope is left.
    unwound: list[bool] = []

    async def work() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.05)  # clean-up that takes a few turns of the loop
            unwound.append(True)

    with anyio.move_on_after(0.05):
        await _deadline.within(5.0, work(), lambda _: None, set())
    assert unwound == [True]


async def test_applies_only_under_asyncio(anyio_backend: str) -> None:
    assert _deadline.applies() is (anyio_backend == "asyncio")
