"""What a call did, for people and machines: structured log lines, event callbacks and request ids.

A :class:`~resilient_session.ResilientSession` observes a call only when someone listens: a callback in
``session.events``, the ``resilient_session`` logger enabled for INFO, or OpenTelemetry tracing (see
:mod:`resilient_session.observe.tracing`). Otherwise a call pays for one check and its request id.

Log lines (logger ``resilient_session``) carry these ``extra`` fields: ``integration``, ``method``,
``url`` (credentials redacted), ``status``, ``attempt``, ``elapsed_ms``, ``outcome`` (``"ok"``,
``"http_error"``, ``"error"``; ``"retry"`` on an attempt that is retried), ``error_type``, ``request_id``
and ``breaker_state``. One INFO line per logical call, one DEBUG line per attempt.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from requests.structures import CaseInsensitiveDict

from .._call import CallObserver, CallState, RetryGate, current_call
from .._redact import redact_url
from ..errors import CircuitOpenError
from ..policies.budget import BudgetGate
from .tracing import CallTrace, tracer_for

__all__ = [
    "DEFAULT_REQUEST_ID_HEADER",
    "BudgetExhausted",
    "CallContextFilter",
    "CallEvent",
    "Events",
    "bind_request_id",
    "current_request_id",
]

log = logging.getLogger("resilient_session")

#: The header carrying the request id unless a session names another (or ``None`` for none).
DEFAULT_REQUEST_ID_HEADER = "X-Request-ID"

Callback = TypeVar("Callback", bound=Callable[..., Any])

_bound_request_id: ContextVar[str | None] = ContextVar("resilient_session_request_id", default=None)


@contextmanager
def bind_request_id(request_id: str) -> Iterator[str]:
    """Calls made inside the block send *request_id* instead of a fresh one.

    Use it to carry an incoming request's id to every upstream call it causes::

        with bind_request_id(flask.request.headers["X-Request-ID"]):
            session.get("/users/42")
    """
    token = _bound_request_id.set(request_id)
    try:
        yield request_id
    finally:
        _bound_request_id.reset(token)


def current_request_id() -> str | None:
    """The request id of the call running in this context, or the one bound by :func:`bind_request_id`."""
    call = current_call()
    value = call.extras.get("request_id") if call is not None else None
    return value if isinstance(value, str) else _bound_request_id.get()


@dataclass(frozen=True)
class CallEvent:
    """What ``on_request``, ``on_retry``, ``on_response`` and ``on_error`` callbacks receive.

    :param kind: ``"request"``, ``"retry"``, ``"response"`` or ``"error"``.
    :param integration: The session's ``integration`` name, or ``None``.
    :param method: The HTTP method.
    :param url: The URL, credentials redacted.
    :param request_id: The call's request id (``None`` when the session sends none).
    :param attempt: Attempts made so far (for ``retry``: the attempt that failed).
    :param elapsed: Seconds since the call started.
    :param status: The HTTP status of the response (``response``), or of the attempt being retried.
    :param reason: Why an attempt is retried (``"status 503"``, ``"read timeout"`` ...).
    :param delay: Seconds the retry waits first.
    :param outcome: ``"ok"``, ``"http_error"`` or ``"error"`` for ``response`` and ``error``.
    :param breaker_state: ``"closed"``, ``"half_open"`` or ``"open"`` when a circuit breaker is used.
    :param response: The final response (``response`` only).
    :param error: The exception the call raised (``error`` only).
    """

    kind: str
    integration: str | None
    method: str
    url: str
    request_id: str | None
    attempt: int
    elapsed: float
    status: int | None = None
    reason: str | None = None
    delay: float | None = None
    outcome: str | None = None
    breaker_state: str | None = None
    response: requests.Response | None = dataclasses.field(default=None, repr=False)
    error: BaseException | None = None


@dataclass(frozen=True)
class BudgetExhausted:
    """What ``on_budget_exhausted`` callbacks receive: a retry was skipped because the budget of
    ``host`` (a ``scheme://host:port`` or the budget's name) could not pay for it."""

    host: str
    reason: str
    integration: str | None
    method: str
    url: str
    request_id: str | None


_KINDS = ("request", "retry", "response", "error", "breaker_state_change", "budget_exhausted")


class Events:
    """Callbacks told about every call of a session, to feed metrics or audit logs.

    Register with the ``on_*`` methods (each returns the callback, so they work as decorators)::

        @session.events.on_retry
        def count_retry(event: CallEvent) -> None:
            RETRIES.labels(event.integration, event.reason).inc()

    ``on_request``, ``on_retry``, ``on_response`` and ``on_error`` receive a :class:`CallEvent`;
    ``on_breaker_state_change`` a :class:`~resilient_session.StateChange` (transitions caused by this
    session's calls); ``on_budget_exhausted`` a :class:`BudgetExhausted`. In one call the order is
    ``request``, then ``retry`` once per retry, then exactly one of ``response`` or ``error``.

    Callbacks run synchronously in the calling thread. An exception in a callback is logged and never
    reaches the call. Copies and pickles of a session start with no callbacks.
    """

    __slots__ = ("_callbacks",)

    def __init__(self) -> None:
        self._callbacks: dict[str, tuple[Callable[[Any], object], ...]] = {}

    def on_request(self, callback: Callback) -> Callback:
        """Call *callback* when a call starts (once per call, not per attempt or redirect)."""
        return self._add("request", callback)

    def on_retry(self, callback: Callback) -> Callback:
        """Call *callback* when an attempt failed and another one will be made."""
        return self._add("retry", callback)

    def on_response(self, callback: Callback) -> Callback:
        """Call *callback* when a call ends with a response (any status)."""
        return self._add("response", callback)

    def on_error(self, callback: Callback) -> Callback:
        """Call *callback* when a call ends with an exception."""
        return self._add("error", callback)

    def on_breaker_state_change(self, callback: Callback) -> Callback:
        """Call *callback* when a call of this session moves its circuit to another state."""
        return self._add("breaker_state_change", callback)

    def on_budget_exhausted(self, callback: Callback) -> Callback:
        """Call *callback* when the retry budget refused a retry of a call of this session."""
        return self._add("budget_exhausted", callback)

    def remove(self, callback: Callable[..., Any]) -> None:
        """Unregister *callback* from every event it was registered for."""
        self._callbacks = {
            kind: kept
            for kind, callbacks in self._callbacks.items()
            if (kept := tuple(c for c in callbacks if c != callback))
        }

    def emit(self, kind: str, payload: object) -> None:
        """Call the callbacks registered for *kind* with *payload*; a failing callback is logged."""
        for callback in self._callbacks.get(kind, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("resilient_session event callback %r failed on %r", callback, kind)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{kind}={len(self._callbacks[kind])}" for kind in _KINDS if kind in self._callbacks
        )
        return f"{type(self).__name__}({counts})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Callbacks are process-local (often closures over metric objects): a copy starts without any.
        return (Events, ())

    def _add(self, kind: str, callback: Callback) -> Callback:
        if not callable(callback):
            raise TypeError(f"on_{kind} needs a callable, got {callback!r}")
        # Copy-on-write: emit() iterates a tuple that registration never mutates.
        self._callbacks = {**self._callbacks, kind: (*self._callbacks.get(kind, ()), callback)}
        return callback


# -- log records ------------------------------------------------------------------------------------------

_FIELDS = (
    "integration",
    "method",
    "url",
    "status",
    "attempt",
    "elapsed_ms",
    "outcome",
    "error_type",
    "request_id",
    "breaker_state",
)


class CallContextFilter(logging.Filter):
    """Gives every record of the package's loggers all the structured fields, so a format string or a
    JSON formatter can name them: absent ones are ``None``, ``integration`` and ``request_id`` come from
    the call in progress. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if "request_id" not in fields or "integration" not in fields:
            call = current_call()
            extras = call.extras if call is not None else {}
            fields.setdefault("request_id", extras.get("request_id") or _bound_request_id.get())
            fields.setdefault("integration", extras.get("integration"))
        for name in _FIELDS:
            fields.setdefault(name, None)
        return True


_context_filter = CallContextFilter()
for _name in ("resilient_session", "resilient_session.auth", "resilient_session.oauth2"):
    if not any(isinstance(f, CallContextFilter) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(_context_filter)


# -- per-call observation -------------------------------------------------------------------------------


def begin_call(session: Any, call: CallState, request: requests.PreparedRequest) -> CallObserver | None:
    """Give *request* its request id and return the call's observer, or ``None`` when nobody listens.

    *session* supplies ``events``, ``integration``, ``request_id_header`` and ``tracing``.
    """
    header: str | None = session.request_id_header
    request_id = _ensure_request_id(request, header) if header else _bound_request_id.get()
    events: Events = session.events
    trace = _trace_for(session.tracing, call, session.integration, request_id)
    if request_id is not None:
        call.extras["request_id"] = request_id
    if session.integration is not None:
        call.extras["integration"] = session.integration
    if not events and trace is None and not log.isEnabledFor(logging.INFO):
        return None
    observer = _Observer(events, session.integration, request_id, trace)
    observer.begin(call)
    return observer


def end_call(
    observer: CallObserver,
    call: CallState,
    response: requests.Response | None = None,
    error: BaseException | None = None,
) -> None:
    """Report the end of a call that :func:`begin_call` gave an observer to."""
    if isinstance(observer, _Observer):
        observer.finish(call, response, error)


def report_refused(session: Any, method: str, url: str, error: BaseException) -> None:
    """Report a call refused before a request was even prepared (an open circuit), as a call that
    ended with *error* at once."""
    call = CallState.begin(method, url, owner=session)
    request_id = _bound_request_id.get()
    trace = _trace_for(session.tracing, call, session.integration, request_id)
    events: Events = session.events
    if events or trace is not None or log.isEnabledFor(logging.INFO):
        observer = _Observer(events, session.integration, request_id, trace)
        observer.begin(call)
        observer.finish(call, None, error)


_random_bits = random.getrandbits


def with_request_id(request: requests.Request, header: str, session_headers: Any) -> requests.Request:
    """*request*, or a copy of it whose headers also carry a new request id in *header*.

    Done before the request is prepared, so an auth that signs every header it sees signs this one.
    A request or session (*session_headers*) naming *header* already (``None`` included) is left as is.
    """
    for headers in (request.headers, session_headers):
        if headers and _names(headers, header):
            return request
    if type(request) is requests.Request:
        # copy.copy's own result for a plain instance (its __dict__ copied into a new object), without
        # copy's dispatch through __reduce_ex__; a subclass may copy itself otherwise, so it gets copy.copy.
        copied = object.__new__(requests.Request)
        copied.__dict__.update(request.__dict__)
        request = copied
    else:
        request = copy.copy(request)
    request.headers = {**dict(_items(request.headers or {})), header: _new_request_id()}
    return request


def _names(headers: Any, header: str) -> bool:
    """True when *headers* (a mapping or a list of pairs) has a key that is *header*, in any case."""
    if isinstance(headers, CaseInsensitiveDict):
        # The scan below, in one or two look-ups: the dict keeps a str key and a bytes key (which
        # requests' merge also accepts) under their lower case.
        if header in headers:
            return True
        try:
            return header.encode("latin-1") in headers  # type: ignore[comparison-overlap]
        except UnicodeEncodeError:
            return False  # no bytes key decodes to it
    return any(_lower(key) == header.lower() for key, _ in _items(headers))


def _items(headers: Any) -> Any:
    # What requests' merge_setting accepts: a mapping or a list of pairs.
    return headers.items() if hasattr(headers, "items") else headers


def _lower(key: Any) -> str:
    return (key.decode("latin-1") if isinstance(key, bytes) else str(key)).lower()


def _ensure_request_id(request: requests.PreparedRequest, header: str) -> str:
    existing = request.headers.get(header)
    if existing:
        return str(existing)
    # Only a request prepared without the session (requests.Request.prepare()) gets its id this late.
    request_id = request.headers[header] = _new_request_id()
    return request_id


def _new_request_id() -> str:
    # 128 random bits as 32 hex digits: as unique as a UUID4. An id needs uniqueness, not secrecy, so
    # the process's PRNG (reseeded after fork) serves, without a system call per request.
    return _bound_request_id.get() or f"{_random_bits(128):032x}"


def _trace_for(
    tracing: Any, call: CallState, integration: str | None, request_id: str | None
) -> CallTrace | None:
    if tracing is False or tracing is None:
        return None
    tracer = tracer_for(tracing)
    return None if tracer is None else CallTrace(tracer, call, integration, request_id)


_PENDING, _ON_WIRE, _ANSWERED = 0, 1, 2


class _Attempt:
    __slots__ = ("hop", "number", "span", "started", "state", "status")

    def __init__(self, number: int, state: int, hop: tuple[str, str] | None) -> None:
        self.number = number
        self.hop = hop
        self.state = state
        self.status: int | None = None
        self.started = time.monotonic()
        self.span: Any = None


class _Observer(CallObserver):
    """Turns the steps of one call into log lines, events and spans."""

    def __init__(self, events: Events, integration: str | None, request_id: str | None, trace: Any) -> None:
        self.events = events
        self.integration = integration
        self.request_id = request_id
        self.trace: CallTrace | None = trace
        self.debug = log.isEnabledFor(logging.DEBUG)
        self.count = 0
        self.retries = 0
        self.current: _Attempt | None = None
        self.breaker_state: str | None = None

    # -- the call -------------------------------------------------------------------------------

    def begin(self, call: CallState) -> None:
        if self.events:
            self.events.emit("request", self._event("request", call))

    def finish(
        self, call: CallState, response: requests.Response | None, error: BaseException | None
    ) -> None:
        if isinstance(error, CircuitOpenError):
            self.breaker_state = "open"
        status = response.status_code if response is not None else None
        if error is not None:
            outcome, error_type = "error", type(error).__name__
        else:
            outcome, error_type = ("ok" if status is not None and status < 400 else "http_error"), None
        if self.current is not None:
            self._end_attempt(call, status if status is not None else call.last_status, error_type, outcome)
        elapsed = call.elapsed()
        if log.isEnabledFor(logging.INFO):
            fields = self._fields(call, status, self.count, elapsed, outcome, error_type)
            if error is None:
                log.info(
                    "%s %s -> %s in %.1f ms (%s)",
                    call.method,
                    call.url,
                    status,
                    elapsed * 1e3,
                    _plural(self.count),
                    extra=fields,
                )
            else:
                log.info(
                    "%s %s failed: %s in %.1f ms (%s)",
                    call.method,
                    call.url,
                    error_type,
                    elapsed * 1e3,
                    _plural(self.count),
                    extra=fields,
                )
        if self.trace is not None:
            self.trace.end(status, error, self.count, self.retries, self.breaker_state)
        if self.events:
            kind = "error" if error is not None else "response"
            self.events.emit(
                kind,
                self._event(kind, call, status=status, outcome=outcome, response=response, error=error),
            )

    # -- CallObserver ---------------------------------------------------------------------------

    def attempt(self, call: CallState, headers: Any, *, on_wire: bool) -> None:
        current = self.current
        if current is not None:
            if current.state == _PENDING:
                # Announced by the adapter or by a retry; now (or still) the same attempt.
                if on_wire:
                    current.state = _ON_WIRE
                    current.started = time.monotonic()
                self._inject(current, headers)
                return
            # Already sent: a redirect hop (adapter) or a retry urllib3 made without telling us.
            self._end_attempt(call, current.status or call.last_status, None, "retry")
        self._start_attempt(call, _ON_WIRE if on_wire else _PENDING, headers)

    def answered(self, call: CallState, status: int) -> None:
        current = self.current
        if current is not None:
            current.state, current.status = _ANSWERED, status

    def retry(self, call: CallState, reason: str, delay: float, status: int | None) -> None:
        failed = self.count
        self.retries += 1
        if self.current is not None:
            self._end_attempt(call, status, None if status is not None else reason, "retry", reason=reason)
        if self.events:
            self.events.emit(
                "retry", self._event("retry", call, attempt=failed, status=status, reason=reason, delay=delay)
            )
        self._start_attempt(call, _PENDING, None)

    def retry_refused(self, call: CallState, gate: RetryGate, reason: str) -> None:
        if isinstance(gate, BudgetGate):
            if self.trace is not None:
                self.trace.event("retry budget exhausted", {"resilient_session.budget.key": gate.host})
            if self.events:
                payload = BudgetExhausted(
                    gate.host, reason, self.integration, call.method, call.url, self.request_id
                )
                self.events.emit("budget_exhausted", payload)

    def circuit(self, call: CallState, state: str) -> None:
        self.breaker_state = state

    def circuit_changed(self, call: CallState, change: Any) -> None:
        new = getattr(change, "new", None)
        self.breaker_state = getattr(new, "value", self.breaker_state)
        if self.trace is not None:
            self.trace.event(
                "circuit state change",
                {
                    "resilient_session.breaker.state": str(self.breaker_state),
                    "resilient_session.breaker.key": str(getattr(change, "host", "")),
                },
            )
        if self.events:
            self.events.emit("breaker_state_change", change)

    # -- attempts -------------------------------------------------------------------------------

    def _start_attempt(self, call: CallState, state: int, headers: Any) -> None:
        self.count += 1
        attempt = self.current = _Attempt(self.count, state, call.hop)
        if headers is not None:
            self._inject(attempt, headers)

    def _inject(self, attempt: _Attempt, headers: Any) -> None:
        trace = self.trace
        if trace is None:
            return
        if attempt.span is None:
            attempt.span = trace.start_attempt(attempt.number, hop=attempt.hop)
        if headers is not None:
            trace.inject(attempt.span, headers)

    def _end_attempt(
        self,
        call: CallState,
        status: int | None,
        error_type: str | None,
        outcome: str,
        reason: str | None = None,
    ) -> None:
        attempt, self.current = self.current, None
        if attempt is None:
            return
        elapsed = time.monotonic() - attempt.started
        if self.trace is not None:
            if attempt.span is None:
                attempt.span = self.trace.start_attempt(
                    attempt.number, started=attempt.started, hop=attempt.hop
                )
            self.trace.end_attempt(attempt.span, status, error_type, reason)
        if self.debug:
            method, url = call.method, call.url
            if attempt.hop is not None and attempt.hop != (call.method, call.raw_url):
                method, url = attempt.hop[0], redact_url(attempt.hop[1])
            fields = self._fields(call, status, attempt.number, elapsed, outcome, error_type)
            fields["method"], fields["url"] = method, url
            log.debug(
                "attempt %d: %s %s -> %s in %.1f ms%s",
                attempt.number,
                method,
                url,
                status if status is not None else error_type,
                elapsed * 1e3,
                f" (retrying: {reason})" if reason else "",
                extra=fields,
            )

    # -- payloads -------------------------------------------------------------------------------

    def _fields(
        self,
        call: CallState,
        status: int | None,
        attempt: int,
        elapsed: float,
        outcome: str,
        error_type: str | None,
    ) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "method": call.method,
            "url": call.url,
            "status": status,
            "attempt": attempt,
            "elapsed_ms": round(elapsed * 1e3, 3),
            "outcome": outcome,
            "error_type": error_type,
            "request_id": self.request_id,
            "breaker_state": self.breaker_state,
        }

    def _event(self, kind: str, call: CallState, *, attempt: int | None = None, **fields: Any) -> CallEvent:
        return CallEvent(
            kind=kind,
            integration=self.integration,
            method=call.method,
            url=call.url,
            request_id=self.request_id,
            attempt=self.count if attempt is None else attempt,
            elapsed=call.elapsed(),
            breaker_state=self.breaker_state,
            **fields,
        )


def _plural(attempts: int) -> str:
    return "1 attempt" if attempts == 1 else f"{attempts} attempts"
