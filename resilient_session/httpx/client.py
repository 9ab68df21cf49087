"""httpx clients with the session's protection: what only a client can do, around a resilient transport.

:class:`AsyncResilientClient` is an ``httpx.AsyncClient`` and :class:`ResilientClient` an
``httpx.Client``: every method, keyword and event hook of httpx works as before. They add the call's
deadline (the async client ends the whole call, auth flow, redirects and body included, by
cancellation), the session's default timeout, ``base_url`` joined as the requests session joins it,
``raise_for_status``, the session's auth objects, ``.normalized`` on every response, and construction
from a registered integration (:meth:`AsyncResilientClient.for_integration`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial, wraps
from typing import TYPE_CHECKING, Any, Concatenate, Generic, NoReturn, ParamSpec, TypeVar, cast

import anyio
import anyio.to_thread
import httpx
import requests
from urllib3.util import Timeout as Urllib3Timeout
from urllib3.util.retry import Retry

from .. import _degrade as _session_degrade
from .._call import CallState, current_call, enter, leave
from .._options import check_session_option
from ..adapter import DEFAULT_TIMEOUT
from ..auth import origins as _origins
from ..normalization.view import DEFAULT_NORMALIZER, Normalizer
from ..observe.events import Events
from ..observe.observer import begin_call, end_call
from ..observe.request_id import DEFAULT_REQUEST_ID_HEADER
from ..policies.breaker import CircuitBreaker
from ..policies.budget import RetryBudget
from ..policies.bulkhead import Bulkhead
from ..policies.degrade import Degrade
from ..policies.ratelimit import RateLimit
from . import _core, _deadline, _degrade
from .auth import bind
from .errors import status_error_for
from .transport import AsyncResilientTransport, ResilientTransport

__all__ = ["DEFAULT_HTTPX_TIMEOUT", "AsyncResilientClient", "ResilientClient", "httpx_timeout"]

#: The session's default timeout as httpx spells it: connect 3.05 s, read (and write, pool) 30 s.
DEFAULT_HTTPX_TIMEOUT = httpx.Timeout(DEFAULT_TIMEOUT[1], connect=DEFAULT_TIMEOUT[0])

# Client keywords httpx hands to the transport it builds; ours builds it, so it hands them on.
_TRANSPORT_KEYWORDS = ("verify", "cert", "http1", "http2", "limits", "trust_env")

# The deadline= of the call in progress (a verb passes it to send() through httpx's own methods).
_DEADLINE: ContextVar[float | None] = ContextVar("resilient_session_httpx_deadline", default=None)
# False while a call that refused degraded answers (allow_stale=False) is being sent.
_ALLOW_STALE: ContextVar[bool] = ContextVar("resilient_session_httpx_allow_stale", default=True)

# Options of a registered integration the httpx clients take (the others are the session's alone).
_INTEGRATION_OPTIONS = (
    *("timeout", "retry", "deadline", "auth", "raise_for_status", "bulkhead", "rate_limit"),
    *("request_id_header", "tracing", "max_response_size", "degrade", "allowed_origins"),
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
def _call_deadline(deadline: float | None, allow_stale: bool = True) -> Iterator[None]:
    """Make *deadline* the ``deadline=`` (and *allow_stale* the ``allow_stale=``) of the call ``send()``
    is about to begin."""
    if deadline is None and allow_stale:
        yield
        return
    check_session_option("deadline", deadline)
    token = _DEADLINE.set(float(deadline)) if deadline is not None else None
    refused = None if allow_stale else _ALLOW_STALE.set(False)
    try:
        yield
    finally:
        if token is not None:
            _DEADLINE.reset(token)
        if refused is not None:
            _ALLOW_STALE.reset(refused)


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


_C = TypeVar("_C", bound="_Resilient[Any]")
#: What a verb returns: the response (sync client), or the coroutine of it (async client).
_R = TypeVar("_R")

#: The keywords of httpx's verbs that send a body (``get`` and the other verbs without one refuse them).
_BODY_KEYWORDS = ("content", "data", "files", "json")

_P = ParamSpec("_P")


def _awaited(
    verb: Callable[Concatenate[Any, _P], Coroutine[Any, Any, httpx.Response]],
) -> Callable[Concatenate[Any, _P], Coroutine[Any, Any, httpx.Response]]:
    """*verb* of the async client as httpx's own: a coroutine function (``inspect``, ``AsyncMock`` and
    ``create_autospec`` see it as one), awaiting the coroutine the shared verb hands back."""

    @wraps(verb)
    async def call(self: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> httpx.Response:
        return await verb(self, *args, **kwargs)

    return call


class _Resilient(Generic[_R]):
    """What both clients add to httpx's: options, URL joining, the call's state and its observation."""

    _resilient_base_url: str | None
    deadline: float | None
    raise_for_status: bool
    #: Callbacks told about every call (as ``session.events``).
    events: Events
    integration: str | None
    request_id_header: str | None
    tracing: Any
    #: The degrade policy (``None``: none), as ``session.degrade``.
    degrade: Degrade | None
    #: More origins the constructor's credentials may be sent to, besides ``base_url``'s.
    allowed_origins: tuple[str, ...]
    _resilient_cert: Any

    #: The transport class wrapping the one that sends each attempt (sync or async).
    _wrapper: type[ResilientTransport] | type[AsyncResilientTransport]

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
        rate_limit: RateLimit | bool | None = None,
        max_response_size: int | None = None,
        degrade: Degrade | None = None,
        auth: Any = None,
        allowed_origins: str | Iterable[str] | None = None,
        transport: Any = None,
        normalizer: Normalizer = DEFAULT_NORMALIZER,
        integration: str | None = None,
        request_id_header: str | None = DEFAULT_REQUEST_ID_HEADER,
        tracing: Any = True,
        **kwargs: Any,
    ) -> None:
        check_session_option("deadline", deadline)
        check_session_option("raise_for_status", raise_for_status)
        check_session_option("request_id_header", request_id_header)
        if degrade is not None and not isinstance(degrade, Degrade):
            raise TypeError(f"degrade must be a Degrade or None, not {type(degrade).__name__}")
        self._resilient_base_url = str(base_url) if base_url else None
        self.deadline = None if deadline is None else float(deadline)
        self.raise_for_status = raise_for_status
        self.events = Events()
        self.integration = integration
        self.request_id_header = request_id_header
        self.tracing = tracing
        self.degrade = degrade
        self.allowed_origins = _origins.parse_origins(allowed_origins)
        self._resilient_cert = kwargs.get("cert")  # part of a stored answer's identity
        # Async: the work of calls ended at their deadline, still closing their connections.
        self._abandoned: set[Any] = set()
        if not isinstance(transport, self._wrapper):
            transport = self._wrapper(
                transport,
                retry=retry,
                breaker=breaker,
                budget=budget,
                bulkhead=bulkhead,
                rate_limit=rate_limit,
                max_response_size=max_response_size,
                base_url=self._resilient_base_url,
                normalizer=normalizer,
                options={k: kwargs[k] for k in _TRANSPORT_KEYWORDS if k in kwargs},
            )
        super().__init__(timeout=timeout, transport=transport, auth=self._bound(auth), **kwargs)  # type: ignore[call-arg]
        self.resilient_transport = transport

    @classmethod
    def for_integration(cls: type[_C], integration: Any, **overrides: Any) -> _C:
        """A client of a registered integration (its name, or the ``Integration``): the same base URL,
        headers, policies and auth as ``registry.session(name)``, the same named circuit and budget."""
        return cls(**_integration_kwargs(integration, overrides))

    # The verbs take the call's ``deadline=`` (and, for the safe ones, ``allow_stale=``) and hand over
    # to ``request``; on the async client they return its coroutine, to be awaited as httpx's.

    def get(
        self,
        /,
        url: httpx.URL | str,
        *,
        deadline: float | None = None,
        allow_stale: bool = True,
        **kwargs: Any,
    ) -> _R:
        """As httpx's ``get``, plus ``deadline=`` (seconds, this call alone) and ``allow_stale=``."""
        return self._verb("GET", url, deadline, allow_stale, kwargs)

    def head(
        self,
        /,
        url: httpx.URL | str,
        *,
        deadline: float | None = None,
        allow_stale: bool = True,
        **kwargs: Any,
    ) -> _R:
        """As httpx's ``head``, plus ``deadline=`` and ``allow_stale=``."""
        return self._verb("HEAD", url, deadline, allow_stale, kwargs)

    def options(self, /, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> _R:
        """As httpx's ``options``, plus ``deadline=``."""
        return self._verb("OPTIONS", url, deadline, True, kwargs)

    def delete(self, /, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> _R:
        """As httpx's ``delete``, plus ``deadline=``."""
        return self._verb("DELETE", url, deadline, True, kwargs)

    def post(self, /, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> _R:
        """As httpx's ``post``, plus ``deadline=``."""
        return cast(_R, self.request("POST", url, deadline=deadline, **kwargs))

    def put(self, /, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> _R:
        """As httpx's ``put``, plus ``deadline=``."""
        return cast(_R, self.request("PUT", url, deadline=deadline, **kwargs))

    def patch(self, /, url: httpx.URL | str, *, deadline: float | None = None, **kwargs: Any) -> _R:
        """As httpx's ``patch``, plus ``deadline=``."""
        return cast(_R, self.request("PATCH", url, deadline=deadline, **kwargs))

    if TYPE_CHECKING:  # each client's own (sync, or a coroutine)

        def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> Any: ...

    def _verb(
        self, method: str, url: httpx.URL | str, deadline: float | None, allow_stale: bool, kwargs: Any
    ) -> _R:
        body = next((name for name in _BODY_KEYWORDS if name in kwargs), None)
        if body is not None:
            # httpx's own verbs without a body take no body keyword.
            raise TypeError(f"{method.lower()}() got an unexpected keyword argument {body!r}")
        return cast(_R, self.request(method, url, deadline=deadline, allow_stale=allow_stale, **kwargs))

    def _bound(self, auth: Any) -> Any:
        """The constructor's *auth*, bound to ``base_url``'s origin and ``allowed_origins``."""
        return bind(auth, self._resilient_base_url, self.allowed_origins, self.integration)

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
        if not _ALLOW_STALE.get():
            call.extras["allow_stale"] = False
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


#: The shared verbs as the async client has them: each hands back the coroutine of its call.
_AsyncVerbs = _Resilient[Coroutine[Any, Any, httpx.Response]]


class AsyncResilientClient(_AsyncVerbs, httpx.AsyncClient):
    """An ``httpx.AsyncClient`` with retries, a deadline, circuit breaker, retry budget and typed errors.

    Its keywords (the same for :class:`ResilientClient`):

    - ``base_url``: Relative URLs are appended to it, as the requests session does.
    - ``timeout``: httpx's ``timeout=``; default connect 3.05 s, read 30 s (the session's).
    - ``retry``: A :class:`~resilient_session.RetryPolicy` (default ``RetryPolicy()``), a urllib3
      ``Retry``, an int or ``False``.
    - ``deadline``: Seconds for each call, everything included; ``deadline=`` on a call overrides it.
      On expiry the call is cancelled and raises :class:`~resilient_session.httpx.HTTPXDeadlineExceeded`.
    - ``raise_for_status``: Raise the typed status error (also ``httpx.HTTPStatusError``) on 4xx/5xx.
    - ``breaker``: As for the session; ``True`` (default) shares the process-wide circuit per origin
      with every requests session of the process.
    - ``budget``: As for the session, ``True`` by default.
    - ``bulkhead``: As for the session, off by default.
    - ``rate_limit``: As for the session: a :class:`~resilient_session.policies.RateLimit` (its schedule
      shared with every session and client drawing from its store), ``True`` or ``None`` (default).
      A call with no slot in its time raises :class:`~resilient_session.httpx.HTTPXQuotaExceeded`.
    - ``max_response_size``: As for the session: bytes a non-streamed body may have after decoding;
      past them :class:`~resilient_session.httpx.HTTPXResponseTooLarge`. ``None`` (default): no limit.
    - ``degrade``: As for the session: a :class:`~resilient_session.policies.Degrade` policy answering a
      failed ``GET``/``HEAD`` from its store (the session's keys: they serve each other's answers) or
      its fallback, marked in ``response.normalized.degraded``.
    - ``auth``: An httpx auth, or one of the session's (``APIKeyAuth``, ``BearerAuth``, ``BasicAuth``,
      the OAuth2 grants, any requests ``AuthBase``), wrapped in :class:`~resilient_session.httpx.HTTPXAuth`.
      With a ``base_url`` (or ``allowed_origins``) it is bound, as the session's: sent only to those
      origins. An ``auth=`` given to one call goes wherever the call goes, as in httpx.
    - ``allowed_origins``: As for the session: more origins the constructor's ``auth`` may be sent to.
    - ``transport``: The transport that sends each attempt (default ``httpx.AsyncHTTPTransport``); it
      is wrapped in an :class:`~resilient_session.httpx.AsyncResilientTransport` unless it is one.
    - ``normalizer``: Builds ``response.normalized``.
    - ``integration``: The name in log lines, events and spans (set by :meth:`for_integration`).
    - ``request_id_header``: As for the session: each call carries a request id in this header
      (``None``: none).
    - ``tracing``: As for the session: OpenTelemetry spans per call and attempt when available.
    - every other ``httpx.AsyncClient`` keyword (``headers``, ``event_hooks`` ...).

    ``events`` takes the session's callbacks (``client.events.on_retry(...)``); each call logs the
    session's one INFO line.
    """

    _wrapper = AsyncResilientTransport
    #: The transport the client sends through (its policies: ``resilient_transport.policies``).
    resilient_transport: AsyncResilientTransport

    get = _awaited(_AsyncVerbs.get)
    head = _awaited(_AsyncVerbs.head)
    options = _awaited(_AsyncVerbs.options)
    delete = _awaited(_AsyncVerbs.delete)
    post = _awaited(_AsyncVerbs.post)
    put = _awaited(_AsyncVerbs.put)
    patch = _awaited(_AsyncVerbs.patch)

    async def aclose(self) -> None:
        """As ``httpx.AsyncClient.aclose``, once the calls ended at their deadline have closed their
        connections."""
        await _deadline.unwound(self._abandoned)
        await super().aclose()

    async def __aexit__(self, *args: Any) -> None:
        await _deadline.unwound(self._abandoned)
        await super().__aexit__(*args)

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        deadline: float | None = None,
        allow_stale: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """As ``httpx.AsyncClient.request``, plus ``deadline=`` (seconds) for this call alone, and
        ``allow_stale=False`` to refuse a degraded answer (see the ``degrade`` option)."""
        with _call_deadline(deadline, allow_stale):
            response: httpx.Response = await super().request(method, url, **kwargs)
            return response

    async def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """As ``httpx.AsyncClient.send``; the whole call (auth, redirects, retries, body) ends by its
        deadline, and a cancelled call gives back what it held."""
        call = self._begin(request, stream)
        token = enter(call)
        response: httpx.Response
        try:
            try:
                remaining = call.remaining()
                if remaining is None:  # no deadline: no cancel scope to pay for
                    response = await super().send(request, stream=stream, **kwargs)
                elif _deadline.applies():
                    call.extras["scope_until"] = call.deadline_at  # the transports need no scope of their own
                    answered = await _deadline.within(
                        remaining,
                        super().send(request, stream=stream, **kwargs),
                        _deadline.close_orphan,
                        self._abandoned,
                    )
                    if answered is None:
                        await self._ended(call, request)
                    response = answered
                else:
                    # In this frame, not a helper's: each frame between the caller and the socket is
                    # resumed on every read and unwound by every cancellation.
                    call.extras["scope_until"] = call.deadline_at
                    sent: httpx.Response | None = None
                    with anyio.CancelScope(deadline=anyio.current_time() + remaining) as scope:
                        sent = await super().send(request, stream=stream, **kwargs)
                    if scope.cancelled_caught or sent is None:
                        if sent is not None:
                            await sent.aclose()
                        raise _core.deadline_error(call, request, "the deadline ran out")
                    response = sent
            except Exception as exc:
                # A degrade policy may answer in place of the failure (None: it does not).
                if self.degrade is None:
                    raise
                stand_in = await self._degraded(_degrade.instead_of_error, call, request, exc)
                if stand_in is None:
                    raise
                response = stand_in
            else:
                if self.degrade is not None:
                    answer = await self._degraded(_degrade.after_response, call, request, response, stream)
                    if answer is not response:
                        await response.aclose()
                        response = answer
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
                try:
                    raise error
                finally:
                    del error  # no reference cycle through this frame on the error's traceback
        if stream and call.deadline_at is not None:
            response.stream = _DeadlineStream(response.stream, call, request)
        return response

    async def _ended(self, call: CallState, request: httpx.Request) -> NoReturn:
        """Raise the deadline error of *call*, its hop in flight settled first: the breaker has heard
        of it and its slots are back before the caller goes on."""
        error = _core.deadline_error(call, request, "the deadline ran out")
        try:
            await _deadline.settle(call, error)
            raise error
        finally:
            del error  # no reference cycle through this frame on the error's traceback

    async def _degraded(self, step: Any, call: CallState, request: httpx.Request, *args: Any) -> Any:
        """``step(self, call, request, *args)`` of the degrade policy, in a worker thread (its store is
        a file or a Redis server), or at once when no policy applies to the request."""
        policy = self.degrade and _session_degrade.policy_for(self, request.method, str(request.url))
        if policy is None:
            return step(self, call, request, *args) if step is _degrade.after_response else None
        return await anyio.to_thread.run_sync(partial(step, self, call, request, *args))


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


class ResilientClient(_Resilient[httpx.Response], httpx.Client):
    """The sync twin of :class:`AsyncResilientClient`, an ``httpx.Client``; the same keywords.

    The deadline bounds each attempt's socket waits, the backoff sleeps and the bulkhead wait, and is
    checked between body chunks (a sync client has no cancellation; see ``docs/async.md``).
    """

    _wrapper = ResilientTransport
    #: The transport the client sends through (its policies: ``resilient_transport.policies``).
    resilient_transport: ResilientTransport

    def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        deadline: float | None = None,
        allow_stale: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """As ``httpx.Client.request``, plus ``deadline=`` (seconds) for this call alone, and
        ``allow_stale=False`` to refuse a degraded answer (see the ``degrade`` option)."""
        with _call_deadline(deadline, allow_stale):
            response: httpx.Response = super().request(method, url, **kwargs)
            return response

    def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """As ``httpx.Client.send``; the call's state (deadline, attempts) spans auth and redirects."""
        call = self._begin(request, stream)
        token = enter(call)
        try:
            try:
                response = super().send(request, stream=stream, **kwargs)
            except Exception as exc:
                # A degrade policy may answer in place of the failure (None: it does not).
                stand_in = _degrade.instead_of_error(self, call, request, exc)
                if stand_in is None:
                    raise
                response = stand_in
            else:
                answer = _degrade.after_response(self, call, request, response, stream)
                if answer is not response:
                    response.close()
                    response = answer
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
