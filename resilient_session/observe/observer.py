"""What a call did, for people and machines: structured log lines, event callbacks and request ids.

A :class:`~resilient_session.ResilientSession` observes a call only when someone listens: a callback in
``session.events``, the ``resilient_session`` logger enabled for INFO, or OpenTelemetry tracing (see
:mod:`resilient_session.observe.tracing`). Otherwise a call pays for one check and its request id.

Log lines (logger ``resilient_session``) carry these ``extra`` fields: ``integration``, ``method``,
``url`` (credentials redacted), ``status``, ``attempt``, ``elapsed_ms``, ``outcome`` (``"ok"``,
``"http_error"``, ``"error"``, ``"degraded"``; ``"retry"`` on an attempt that is retried), ``error_type``,
``request_id`` and ``breaker_state``; a degraded answer adds ``degraded`` (``"stale"``/``"fallback"``),
``degraded_reason`` and ``degraded_age``, a rate limit ``quota_wait_ms`` and ``quota_remaining``. One INFO
line per logical call, one DEBUG line per attempt.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests

from .._call import CallObserver, CallState, RetryGate
from .._quota import current_gate
from .._redact import redact_url
from ..errors import CircuitOpenError
from ..policies.budget import BudgetGate
from .events import BudgetExhausted, CallEvent, Events
from .request_id import bound_request_id, ensure_request_id
from .tracing import CallTrace, tracer_for

__all__ = ["begin_call", "end_call", "report_refused"]

log = logging.getLogger("resilient_session")


def begin_call(session: Any, call: CallState, request: requests.PreparedRequest) -> CallObserver | None:
    """Give *request* its request id and return the call's observer, or ``None`` when nobody listens.

    *session* supplies ``events``, ``integration``, ``request_id_header`` and ``tracing``.
    """
    header: str | None = session.request_id_header
    request_id = ensure_request_id(request, header) if header else bound_request_id()
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
    request_id = bound_request_id()
    trace = _trace_for(session.tracing, call, session.integration, request_id)
    events: Events = session.events
    if events or trace is not None or log.isEnabledFor(logging.INFO):
        observer = _Observer(events, session.integration, request_id, trace)
        observer.begin(call)
        observer.finish(call, None, error)


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
        status = response.status_code if response is not None else None
        degraded = getattr(response, "degraded", None) if response is not None else None
        if isinstance(error, CircuitOpenError) or isinstance(
            getattr(degraded, "error", None), CircuitOpenError
        ):
            self.breaker_state = "open"
        error_type: str | None
        if error is not None:
            outcome, error_type = "error", type(error).__name__
        elif degraded is not None:
            # Answered in place of a failure: the failure is what the attempts saw.
            outcome, error_type = "degraded", type(degraded.error).__name__ if degraded.error else None
        else:
            outcome, error_type = ("ok" if status is not None and status < 400 else "http_error"), None
        if self.current is not None:
            seen = call.last_status if degraded is not None or status is None else status
            self._end_attempt(call, seen, error_type, outcome)
        elapsed = call.elapsed()
        gate = current_gate(call)
        if log.isEnabledFor(logging.INFO):
            fields = self._fields(call, status, self.count, elapsed, outcome, error_type)
            if gate is not None:
                fields["quota_wait_ms"] = round(gate.waited * 1e3, 3)
                if gate.quota is not None:
                    fields["quota_remaining"] = gate.quota.remaining
            if degraded is not None:
                fields["degraded"] = degraded.kind
                fields["degraded_reason"] = degraded.reason
                fields["degraded_age"] = degraded.age
                log.info(
                    "%s %s -> %s degraded (%s) in %.1f ms (%s)",
                    call.method,
                    call.url,
                    status,
                    degraded.header_value(),
                    elapsed * 1e3,
                    _plural(self.count),
                    extra=fields,
                )
            elif error is None:
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
            if degraded is not None:
                self.trace.degraded(degraded)
            if gate is not None:
                self.trace.set_attributes(gate.attributes())
            self.trace.end(status, error, self.count, self.retries, self.breaker_state)
        if self.events:
            kind = "error" if error is not None else "response"
            quota: dict[str, Any] = {} if gate is None else {"quota": gate.quota, "quota_wait": gate.waited}
            self.events.emit(
                kind,
                self._event(
                    kind,
                    call,
                    status=status,
                    outcome=outcome,
                    response=response,
                    error=error,
                    degraded=degraded,
                    **quota,
                ),
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
