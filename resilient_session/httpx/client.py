"""httpx clients with the session's protection: what only a client can do, around a resilient transport.

:class:`AsyncResilientClient` is an ``httpx.AsyncClient``: every method, keyword and event hook of
httpx works as before. It adds the call's deadline (attempts, backoff, auth flow, redirects and the
body together, ended by cancellation), the session's default timeout, ``base_url`` joined as the
requests session joins it, ``raise_for_status``, and ``.normalized`` on every response.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import anyio
import httpx
from urllib3.util.retry import Retry

from .._call import CallState, current_call, enter, leave
from .._options import check_session_option
from ..adapter import DEFAULT_TIMEOUT
from ..normalization.view import DEFAULT_NORMALIZER, Normalizer
from ..policies.breaker import CircuitBreaker
from ..policies.budget import RetryBudget
from ..policies.bulkhead import Bulkhead
from . import _core
from .errors import status_error_for
from .transport import AsyncResilientTransport

__all__ = ["DEFAULT_HTTPX_TIMEOUT", "AsyncResilientClient"]

#: The session's default timeout as httpx spells it: connect 3.05 s, read (and write, pool) 30 s.
DEFAULT_HTTPX_TIMEOUT = httpx.Timeout(DEFAULT_TIMEOUT[1], connect=DEFAULT_TIMEOUT[0])

# Client keywords httpx hands to the transport it builds; ours builds it, so it hands them on.
_TRANSPORT_KEYWORDS = ("verify", "cert", "http1", "http2", "limits", "trust_env")

# The deadline= of the call in progress (request() passes it to send() through httpx's own methods).
_DEADLINE: ContextVar[float | None] = ContextVar("resilient_session_httpx_deadline", default=None)


def _join(base_url: str, url: str) -> str:
    """*url* joined to *base_url* as :meth:`ResilientSession.join_url` joins it."""
    if not url:
        return base_url
    if url.startswith(("?", "#")):
        return base_url.split("#", 1)[0].split("?", 1)[0] + url
    return base_url.rstrip("/") + "/" + url.lstrip("/")


@contextmanager
def _call_deadline(deadline: float | None) -> Iterator[None]:
    """Make *deadline* the ``deadline=`` of the call :meth:`AsyncResilientClient.send` is about to begin."""
    if deadline is None:
        yield
        return
    check_session_option("deadline", deadline)
    token = _DEADLINE.set(float(deadline))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


class AsyncResilientClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` with retries, a deadline, circuit breaker, retry budget and typed errors.

    :param base_url: Relative URLs are appended to it, as the requests session does.
    :param timeout: httpx's ``timeout=``; default connect 3.05 s, read 30 s (the session's).
    :param retry: A :class:`~resilient_session.RetryPolicy` (default ``RetryPolicy()``), a urllib3
        ``Retry``, an int or ``False``.
    :param deadline: Seconds for each call, everything included; ``deadline=`` on a call overrides it.
        On expiry the call is cancelled and raises :class:`HTTPXDeadlineExceeded`.
    :param raise_for_status: Raise the typed status error (also ``httpx.HTTPStatusError``) on 4xx/5xx.
    :param breaker: As for the session; ``True`` (default) shares the process-wide circuit per origin
        with every requests session of the process.
    :param budget: As for the session, ``True`` by default.
    :param bulkhead: As for the session, off by default.
    :param transport: The transport that sends each attempt (default ``httpx.AsyncHTTPTransport``); it
        is wrapped in an :class:`AsyncResilientTransport` unless it is one.
    :param normalizer: Builds ``response.normalized``.
    :param kwargs: Every other ``httpx.AsyncClient`` keyword (``auth``, ``headers``, ``event_hooks`` ...).
    """

    def __init__(
        self,
        *,
        base_url: str | httpx.URL = "",
        timeout: Any = DEFAULT_HTTPX_TIMEOUT,
        retry: Retry | int | bool | None = None,
        deadline: float | None = None,
        raise_for_status: bool = False,
        breaker: CircuitBreaker | bool | None = True,
        budget: RetryBudget | bool | None = True,
        bulkhead: Bulkhead | bool | None = False,
        transport: httpx.AsyncBaseTransport | None = None,
        normalizer: Normalizer = DEFAULT_NORMALIZER,
        **kwargs: Any,
    ) -> None:
        check_session_option("deadline", deadline)
        check_session_option("raise_for_status", raise_for_status)
        base = str(base_url) if base_url else None
        if not isinstance(transport, AsyncResilientTransport):
            if transport is None:
                given = {k: kwargs[k] for k in _TRANSPORT_KEYWORDS if k in kwargs}
                transport = httpx.AsyncHTTPTransport(**given)
            transport = AsyncResilientTransport(
                transport,
                retry=retry,
                breaker=breaker,
                budget=budget,
                bulkhead=bulkhead,
                base_url=base,
                normalizer=normalizer,
            )
        super().__init__(timeout=timeout, transport=transport, **kwargs)
        self._resilient_base_url = base
        self.deadline = None if deadline is None else float(deadline)
        self.raise_for_status = raise_for_status
        self.resilient_transport: AsyncResilientTransport = transport

    def _merge_url(self, url: Any) -> httpx.URL:
        base = self._resilient_base_url
        text = str(url) if isinstance(url, httpx.URL) else url
        if base and isinstance(text, str) and "://" not in text[:16]:
            return httpx.URL(_join(base, text))
        return super()._merge_url(url)

    async def request(
        self, method: str, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.AsyncClient.request``, plus ``deadline=`` (seconds) for this call alone."""
        with _call_deadline(deadline):
            return await super().request(method, url, **kwargs)

    async def get(
        self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.AsyncClient.get``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return await super().get(url, **kwargs)

    async def options(
        self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.AsyncClient.options``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return await super().options(url, **kwargs)

    async def head(
        self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.AsyncClient.head``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return await super().head(url, **kwargs)

    async def post(
        self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.AsyncClient.post``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return await super().post(url, **kwargs)

    async def put(
        self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.AsyncClient.put``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return await super().put(url, **kwargs)

    async def patch(
        self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.AsyncClient.patch``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return await super().patch(url, **kwargs)

    async def delete(
        self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.AsyncClient.delete``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return await super().delete(url, **kwargs)

    async def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """As ``httpx.AsyncClient.send``; the whole call (auth, redirects, retries, body) ends by its
        deadline, and a cancelled call gives back what it held."""
        outer = current_call()
        call = CallState.begin(
            request.method, str(request.url), extras={"httpx_client": self, "stream": stream}
        )
        call.tighten_deadline(_DEADLINE.get(self.deadline))
        if outer is not None and outer.deadline_at is not None:
            call.tighten_deadline(outer.deadline_at - call.started)
        token = enter(call)
        try:
            remaining = call.remaining()
            scope_deadline = math.inf if remaining is None else anyio.current_time() + remaining
            response: httpx.Response | None = None
            with anyio.CancelScope(deadline=scope_deadline) as scope:
                response = await super().send(request, stream=stream, **kwargs)
            if scope.cancelled_caught or response is None:
                if response is not None:
                    await response.aclose()
                raise _core.deadline_error(call, request, "the deadline ran out")
        finally:
            leave(token)
        if self.raise_for_status:
            error = status_error_for(response, attempts=call.attempts, elapsed=call.elapsed())
            if error is not None:
                if stream:
                    await response.aclose()
                raise error
        return response
