"""httpx clients with the session's protection: what only a client can do, around a resilient transport.

:class:`AsyncResilientClient` is an ``httpx.AsyncClient`` and :class:`ResilientClient` an
``httpx.Client``: every method, keyword and event hook of httpx works as before. They add the call's
deadline (the async client ends the whole call, auth flow, redirects and body included, by
cancellation), the session's default timeout, ``base_url`` joined as the requests session joins it,
``raise_for_status``, the session's auth objects, ``.normalized`` on every response, and construction
from a registered integration (:meth:`AsyncResilientClient.for_integration`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

import anyio
import httpx
import requests
from urllib3.util import Timeout as Urllib3Timeout
from urllib3.util.retry import Retry

from .._call import CallState, current_call, enter, leave
from .._options import check_session_option
from ..adapter import DEFAULT_TIMEOUT
from ..normalization.view import DEFAULT_NORMALIZER, Normalizer
from ..observe.events import Events
from ..observe.observer import begin_call, end_call
from ..observe.request_id import DEFAULT_REQUEST_ID_HEADER
from ..policies.breaker import CircuitBreaker
from ..policies.budget import RetryBudget
from ..policies.bulkhead import Bulkhead
from . import _core
from .auth import as_httpx_auth
from .errors import status_error_for
from .transport import AsyncResilientTransport, ResilientTransport

__all__ = ["DEFAULT_HTTPX_TIMEOUT", "AsyncResilientClient", "ResilientClient", "httpx_timeout"]

#: The session's default timeout as httpx spells it: connect 3.05 s, read (and write, pool) 30 s.
DEFAULT_HTTPX_TIMEOUT = httpx.Timeout(DEFAULT_TIMEOUT[1], connect=DEFAULT_TIMEOUT[0])

# Client keywords httpx hands to the transport it builds; ours builds it, so it hands them on.
_TRANSPORT_KEYWORDS = ("verify", "cert", "http1", "http2", "limits", "trust_env")

# The deadline= of the call in progress (a verb passes it to send() through httpx's own methods).
_DEADLINE: ContextVar[float | None] = ContextVar("resilient_session_httpx_deadline", default=None)

# Options of a registered integration the httpx clients take (the others are the session's alone).
_INTEGRATION_OPTIONS = (
    *("timeout", "retry", "deadline", "auth", "raise_for_status", "bulkhead"),
    *("request_id_header", "tracing"),
)


def httpx_timeout(value: Any) -> Any:
    """A session's ``timeout`` (seconds, ``(connect, read)``, a urllib3 ``Timeout``) as httpx takes it."""
    if isinstance(value, httpx.Timeout) or value is None:
        return value
    if isinstance(value, Urllib3Timeout):
        connect, read = value.connect_timeout, value.read_timeout
        return httpx.Timeout(read if isinstance(read, int | float) else None, connect=connect)  # type: ignore[arg-type]
    if isinstance(value, tuple):
        connect, read = value
        return httpx.Timeout(read, connect=connect)
    return httpx.Timeout(value)


def _join(base_url: str, url: str) -> str:
    """*url* joined to *base_url* as :meth:`ResilientSession.join_url` joins it."""
    if not url:
        return base_url
    if url.startswith(("?", "#")):
        return base_url.split("#", 1)[0].split("?", 1)[0] + url
    return base_url.rstrip("/") + "/" + url.lstrip("/")


@contextmanager
def _call_deadline(deadline: float | None) -> Iterator[None]:
    """Make *deadline* the ``deadline=`` of the call ``send()`` is about to begin."""
    if deadline is None:
        yield
        return
    check_session_option("deadline", deadline)
    token = _DEADLINE.set(float(deadline))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _integration_kwargs(integration: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    from .. import registry

    found = registry.get(integration) if isinstance(integration, str) else integration
    kwargs: dict[str, Any] = {k: v for k, v in found.options.items() if k in _INTEGRATION_OPTIONS}
    if "timeout" in kwargs:
        kwargs["timeout"] = httpx_timeout(kwargs["timeout"])
    kwargs.update(
        integration=found.name,
        base_url=found.base_url or "",
        breaker=found.breaker or False,
        budget=found.budget or False,
        headers=dict(found.headers),
    )
    kwargs.update(overrides)
    return kwargs


class _Resilient:
    """What both clients add to httpx's: options, URL joining, the call's state and its observation."""

    _resilient_base_url: str | None
    deadline: float | None
    raise_for_status: bool
    #: Callbacks told about every call (as ``session.events``).
    events: Events
    integration: str | None
    request_id_header: str | None
    tracing: Any

    def _setup(
        self,
        base_url: Any,
        deadline: float | None,
        raise_for_status: bool,
        integration: str | None,
        request_id_header: str | None,
        tracing: Any,
    ) -> None:
        check_session_option("deadline", deadline)
        check_session_option("raise_for_status", raise_for_status)
        check_session_option("request_id_header", request_id_header)
        self._resilient_base_url = str(base_url) if base_url else None
        self.deadline = None if deadline is None else float(deadline)
        self.raise_for_status = raise_for_status
        self.events = Events()
        self.integration = integration
        self.request_id_header = request_id_header
        self.tracing = tracing

    def _merge_url(self, url: Any) -> httpx.URL:
        base = self._resilient_base_url
        text = str(url) if isinstance(url, httpx.URL) else url
        if base and isinstance(text, str) and "://" not in text[:16]:
            return httpx.URL(_join(base, text))
        return super()._merge_url(url)  # type: ignore[misc,no-any-return]

    def _begin(self, request: httpx.Request, stream: bool) -> CallState:
        outer = current_call()
        call = CallState.begin(
            request.method, str(request.url), extras={"httpx_client": self, "stream": stream}
        )
        call.tighten_deadline(_DEADLINE.get(self.deadline))
        if outer is not None and outer.deadline_at is not None:
            call.tighten_deadline(outer.deadline_at - call.started)
        # The session's request id, log line, events and spans; the observer reads only the request's
        # headers, which an httpx request has too.
        call.observer = begin_call(self, call, cast(requests.PreparedRequest, request))
        return call

    def _finish(
        self, call: CallState, response: httpx.Response | None = None, error: BaseException | None = None
    ) -> None:
        if call.observer is not None:
            end_call(call.observer, call, response=cast(requests.Response, response), error=error)


class AsyncResilientClient(_Resilient, httpx.AsyncClient):
    """An ``httpx.AsyncClient`` with retries, a deadline, circuit breaker, retry budget and typed errors.

    :param base_url: Relative URLs are appended to it, as the requests session does.
    :param timeout: httpx's ``timeout=``; default connect 3.05 s, read 30 s (the session's).
    :param retry: A :class:`~resilient_session.RetryPolicy` (default ``RetryPolicy()``), a urllib3
        ``Retry``, an int or ``False``.
    :param deadline: Seconds for each call, everything included; ``deadline=`` on a call overrides it.
        On expiry the call is cancelled and raises :class:`~resilient_session.httpx.HTTPXDeadlineExceeded`.
    :param raise_for_status: Raise the typed status error (also ``httpx.HTTPStatusError``) on 4xx/5xx.
    :param breaker: As for the session; ``True`` (default) shares the process-wide circuit per origin
        with every requests session of the process.
    :param budget: As for the session, ``True`` by default.
    :param bulkhead: As for the session, off by default.
    :param auth: An httpx auth, or one of the session's (``APIKeyAuth``, ``BearerAuth``, ``BasicAuth``,
        the OAuth2 grants, any requests ``AuthBase``), wrapped in :class:`~resilient_session.httpx.HTTPXAuth`.
    :param transport: The transport that sends each attempt (default ``httpx.AsyncHTTPTransport``); it
        is wrapped in an :class:`~resilient_session.httpx.AsyncResilientTransport` unless it is one.
    :param normalizer: Builds ``response.normalized``.
    :param integration: The name in log lines, events and spans (set by :meth:`for_integration`).
    :param request_id_header: As for the session: each call carries a request id in this header
        (``None``: none).
    :param tracing: As for the session: OpenTelemetry spans per call and attempt when available.
    :param kwargs: Every other ``httpx.AsyncClient`` keyword (``headers``, ``event_hooks`` ...).

    ``events`` takes the session's callbacks (``client.events.on_retry(...)``); each call logs the
    session's one INFO line.
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
        auth: Any = None,
        transport: httpx.AsyncBaseTransport | None = None,
        normalizer: Normalizer = DEFAULT_NORMALIZER,
        integration: str | None = None,
        request_id_header: str | None = DEFAULT_REQUEST_ID_HEADER,
        tracing: Any = True,
        **kwargs: Any,
    ) -> None:
        self._setup(base_url, deadline, raise_for_status, integration, request_id_header, tracing)
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
                base_url=self._resilient_base_url,
                normalizer=normalizer,
            )
        super().__init__(timeout=timeout, transport=transport, auth=as_httpx_auth(auth), **kwargs)
        self.resilient_transport: AsyncResilientTransport = transport

    @classmethod
    def for_integration(cls, integration: Any, **overrides: Any) -> AsyncResilientClient:
        """A client of a registered integration (its name, or the ``Integration``): the same base URL,
        headers, policies and auth as ``registry.session(name)``, the same named circuit and budget."""
        return cls(**_integration_kwargs(integration, overrides))

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
        call = self._begin(request, stream)
        token = enter(call)
        try:
            remaining = call.remaining()
            if remaining is None:  # no deadline: no cancel scope to pay for
                response = await super().send(request, stream=stream, **kwargs)
            else:
                call.extras["scope_until"] = call.deadline_at  # the transports need no scope of their own
                ends = anyio.current_time() + remaining
                response = await self._send_by(ends, call, request, stream, kwargs)
        except BaseException as exc:
            self._finish(call, error=exc)
            raise
        finally:
            leave(token)
        self._finish(call, response)
        if self.raise_for_status:
            error = status_error_for(response, attempts=call.attempts, elapsed=call.elapsed())
            if error is not None:
                if stream:
                    await response.aclose()
                raise error
        if stream and call.deadline_at is not None:
            response.stream = _DeadlineStream(response.stream, call, request)
        return response

    async def _send_by(
        self, deadline: float, call: CallState, request: httpx.Request, stream: bool, kwargs: dict[str, Any]
    ) -> httpx.Response:
        response: httpx.Response | None = None
        with anyio.CancelScope(deadline=deadline) as scope:
            response = await super().send(request, stream=stream, **kwargs)
        if scope.cancelled_caught or response is None:
            if response is not None:
                await response.aclose()
            raise _core.deadline_error(call, request, "the deadline ran out")
        return response


class _DeadlineStream(httpx.AsyncByteStream):
    """A streamed body whose every read ends by the call's deadline (the body is part of the call)."""

    def __init__(self, stream: Any, call: CallState, request: httpx.Request) -> None:
        self._stream = stream
        self._call = call
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._stream.__aiter__()
        while True:
            remaining = self._call.remaining() or 0.0
            with anyio.move_on_after(max(remaining, 0.0)) as scope:
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
            if scope.cancelled_caught:
                raise _core.deadline_error(
                    self._call, self._request, "the deadline ran out while reading the body"
                )
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class ResilientClient(_Resilient, httpx.Client):
    """The sync twin of :class:`AsyncResilientClient`, an ``httpx.Client``; the same keywords.

    The deadline bounds each attempt's socket waits, the backoff sleeps and the bulkhead wait, and is
    checked between body chunks (a sync client has no cancellation; see ``docs/async.md``).
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
        auth: Any = None,
        transport: httpx.BaseTransport | None = None,
        normalizer: Normalizer = DEFAULT_NORMALIZER,
        integration: str | None = None,
        request_id_header: str | None = DEFAULT_REQUEST_ID_HEADER,
        tracing: Any = True,
        **kwargs: Any,
    ) -> None:
        self._setup(base_url, deadline, raise_for_status, integration, request_id_header, tracing)
        if not isinstance(transport, ResilientTransport):
            if transport is None:
                given = {k: kwargs[k] for k in _TRANSPORT_KEYWORDS if k in kwargs}
                transport = httpx.HTTPTransport(**given)
            transport = ResilientTransport(
                transport,
                retry=retry,
                breaker=breaker,
                budget=budget,
                bulkhead=bulkhead,
                base_url=self._resilient_base_url,
                normalizer=normalizer,
            )
        super().__init__(timeout=timeout, transport=transport, auth=as_httpx_auth(auth), **kwargs)
        self.resilient_transport: ResilientTransport = transport

    @classmethod
    def for_integration(cls, integration: Any, **overrides: Any) -> ResilientClient:
        """As :meth:`AsyncResilientClient.for_integration`."""
        return cls(**_integration_kwargs(integration, overrides))

    def request(
        self, method: str, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.Client.request``, plus ``deadline=`` (seconds) for this call alone."""
        with _call_deadline(deadline):
            return super().request(method, url, **kwargs)

    def get(self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> httpx.Response:
        """As ``httpx.Client.get``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return super().get(url, **kwargs)

    def options(
        self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As ``httpx.Client.options``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return super().options(url, **kwargs)

    def head(self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> httpx.Response:
        """As ``httpx.Client.head``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return super().head(url, **kwargs)

    def post(self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> httpx.Response:
        """As ``httpx.Client.post``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return super().post(url, **kwargs)

    def put(self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> httpx.Response:
        """As ``httpx.Client.put``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return super().put(url, **kwargs)

    def patch(self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> httpx.Response:
        """As ``httpx.Client.patch``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return super().patch(url, **kwargs)

    def delete(self, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> httpx.Response:
        """As ``httpx.Client.delete``, plus ``deadline=``."""
        with _call_deadline(deadline):
            return super().delete(url, **kwargs)

    def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """As ``httpx.Client.send``; the call's state (deadline, attempts) spans auth and redirects."""
        call = self._begin(request, stream)
        token = enter(call)
        try:
            response = super().send(request, stream=stream, **kwargs)
        except BaseException as exc:
            self._finish(call, error=exc)
            raise
        finally:
            leave(token)
        self._finish(call, response)
        if self.raise_for_status:
            error = status_error_for(response, attempts=call.attempts, elapsed=call.elapsed())
            if error is not None:
                if stream:
                    response.close()
                raise error
        return response
