"""Ending an asyncio call at its deadline without waiting for it to unwind.

A call cancelled while it reads a body unwinds through httpcore's clean-up, which takes the event loop
two more turns (a lock's checkpoint, then the socket's close). When hundreds of deadlines pass together
each turn lasts tens of milliseconds, and the caller would hear of its deadline that much late. So under
asyncio the call's work runs in a task of its own, and the caller waits for whichever comes first, the
work's outcome or the deadline. At the deadline the caller settles what the call held (the transport
registers how, see :func:`settle`) and raises at once; the work, cancelled, closes its connection behind
it. A caller cancelled by its own caller waits for the work to unwind first, so that it gives back what
it held before the cancellation goes on.

Under trio no task may outlive its caller: a cancel scope ends the call there (the client's other path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

import sniffio

from .._call import CallState

__all__ = ["SETTLE", "applies", "close_orphan", "settle", "unwound", "within"]

_T = TypeVar("_T")

#: The key, in a call's extras, of what settles its hop in flight (set by the async transport).
SETTLE = "settle_hop"


def applies() -> bool:
    """True when the running loop is asyncio's (the work may run in a task of its own)."""
    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


async def within(
    seconds: float,
    work: Coroutine[Any, Any, _T],
    orphan: Callable[[_T], object],
    abandoned: set[asyncio.Task[Any]],
) -> _T | None:
    """Await *work* for at most *seconds*: its outcome, or None when the time ran out first. The work
    is then cancelled and ends in its own task, kept in *abandoned* until it has; an outcome it still
    reaches is handed to *orphan*."""
    loop = asyncio.get_running_loop()
    task = loop.create_task(work)
    woken = loop.create_future()

    def wake(_: object = None) -> None:
        if not woken.done():
            woken.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_at(loop.time() + seconds, wake)
    try:
        try:
            await woken
        except BaseException:
            task.cancel()
            await _unwound(task, orphan)
            raise
        finally:
            timer.cancel()
            task.remove_done_callback(wake)
        if task.done():
            return task.result()
        task.cancel()
        task.add_done_callback(partial(_heard, orphan))
        abandoned.add(task)
        task.add_done_callback(abandoned.discard)
        return None
    finally:
        del task  # an error raised here must not keep this frame, and through it the task, in a cycle


async def settle(call: CallState, error: BaseException) -> None:
    """Close the accounts of *call*'s hop in flight as a failure with *error*: what the transport
    registered under :data:`SETTLE` (the breaker's outcome, the bulkhead and quota slots)."""
    settler: Callable[[BaseException], Awaitable[None]] | None = call.extras.pop(SETTLE, None)
    if settler is not None:
        await settler(error)


async def unwound(abandoned: set[asyncio.Task[Any]]) -> None:
    """Wait until the work in *abandoned* (see :func:`within`) has ended."""
    while abandoned:
        await asyncio.wait(set(abandoned))


async def _unwound(task: asyncio.Task[Any], orphan: Callable[[Any], object]) -> None:
    """Wait until *task* has finished, however often this task is asked to stop meanwhile (anyio
    repeats its cancellation on every turn of the loop until the scope is left)."""
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            continue
    _heard(orphan, task)


def _heard(orphan: Callable[[Any], object], task: asyncio.Task[Any]) -> None:
    """Take *task*'s outcome, which no caller waits for any more: an error is dropped (asyncio would
    log it as never retrieved; the caller raised in its place), a result handed to *orphan*."""
    if not task.cancelled() and task.exception() is None:
        orphan(task.result())


def close_orphan(response: Any) -> None:
    """Close *response*, an answer that came after its caller's deadline (a streamed one holds its
    connection until closed)."""
    if not response.is_closed:
        closing = asyncio.get_running_loop().create_task(response.aclose())
        _closing.add(closing)
        closing.add_done_callback(_closing.discard)


#: Closings in progress (the loop keeps only a weak reference to a task).
_closing: set[asyncio.Task[None]] = set()
