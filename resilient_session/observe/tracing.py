"""OpenTelemetry tracing: one span per logical call, one child span per attempt, ``traceparent`` on the wire.

Needs the ``otel`` extra (``opentelemetry-api``; an SDK to export anything). OpenTelemetry is imported only
when a call is traced, and by default (``ResilientSession(tracing=True)``) a call is traced only once the
application has installed a real tracer provider (``opentelemetry.trace.set_tracer_provider``); without
one, or without OpenTelemetry, tracing costs nothing. ``tracing=<TracerProvider>`` uses that provider,
``tracing=False`` never traces.

OpenTelemetry's own requests instrumentation makes one span per ``Session.send``, so retries made inside
urllib3 are invisible. Here the call span (kind INTERNAL, named ``"{METHOD} {integration}"`` or
``"{METHOD}"``) holds one CLIENT child per attempt (redirect hops included), each with the HTTP semantic
convention attributes, and each attempt sends its own ``traceparent`` through the global propagator.
"""

from __future__ import annotations

import sys
import time
from typing import Any
from urllib.parse import urlsplit

from .._call import CallState
from .._redact import redact_log_text, redact_url
from .._version import __version__

__all__ = ["CallTrace", "tracer_for"]

_NAME = "resilient_session"
_KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

_cached: tuple[Any, Any] | None = None


def tracer_for(option: Any) -> Any:
    """The tracer for a session's ``tracing`` option, or ``None`` when calls are not to be traced.

    ``True`` means the global tracer provider, if the application installed one; any other value is
    taken as a ``TracerProvider``.
    """
    global _cached
    if option is True:
        # Not imported by the application: it cannot have configured a provider either.
        if "opentelemetry.trace" not in sys.modules:
            return None
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None
    else:
        provider = option
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer = provider.get_tracer(_NAME, __version__)
    _cached = (provider, tracer)
    return tracer


class CallTrace:
    """The spans of one logical call; the call span is the current span while the call runs."""

    __slots__ = ("_attributes", "_hop", "_method", "_parent", "_token", "_tracer")

    def __init__(self, tracer: Any, call: CallState, integration: str | None, request_id: str | None) -> None:
        from opentelemetry import context, trace

        self._tracer = tracer
        self._method = call.method
        self._attributes = _http_attributes(call.method, call.raw_url, call.url)
        self._hop = (call.method, call.raw_url)
        attributes = dict(self._attributes)
        if integration:
            attributes["resilient_session.integration"] = integration
        if request_id:
            attributes["resilient_session.request_id"] = request_id
        name = f"{call.method} {integration}" if integration else call.method
        self._parent = tracer.start_span(name, kind=trace.SpanKind.INTERNAL, attributes=attributes)
        self._token = context.attach(trace.set_span_in_context(self._parent))

    def start_attempt(
        self, number: int, started: float | None = None, hop: tuple[str, str] | None = None
    ) -> Any:
        """Start the span of attempt *number* (1-based); *started* is a ``time.monotonic()`` value,
        *hop* the method and URL it sends (a redirect hop's, when they differ from the call's)."""
        from opentelemetry import trace

        method = self._method
        if hop is None or hop == self._hop:
            attributes = dict(self._attributes)
        else:
            method = hop[0]
            attributes = _http_attributes(method, hop[1], redact_url(hop[1]))
        if number > 1:
            attributes["http.request.resend_count"] = number - 1
        start_time = None
        if started is not None:
            start_time = time.time_ns() - int((time.monotonic() - started) * 1e9)
        return self._tracer.start_span(
            method,
            context=trace.set_span_in_context(self._parent),
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            start_time=start_time,
        )

    def inject(self, span: Any, headers: Any) -> None:
        """Write the W3C trace context of *span* (``traceparent``, ``tracestate``) into *headers*."""
        from opentelemetry import propagate, trace

        propagate.inject(headers, context=trace.set_span_in_context(span))

    def end_attempt(self, span: Any, status: int | None, error_type: str | None, reason: str | None) -> None:
        """End an attempt's span with its status, or the error that ended it."""
        if reason:
            span.set_attribute("resilient_session.retry.reason", reason)
        _finish(span, status, error_type, None)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        """Set *attributes* on the call span (the rate limit's quota and wait)."""
        self._parent.set_attributes(attributes)

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        """Add an event (a circuit state change, a refused retry) to the call span."""
        self._parent.add_event(name, attributes)

    def degraded(self, info: Any) -> None:
        """Mark the call span as answered by a degrade policy (*info* is a ``Degraded``)."""
        span = self._parent
        span.set_attribute("resilient_session.degraded", info.kind)
        span.set_attribute("resilient_session.degraded.reason", info.reason)
        if info.age is not None:
            span.set_attribute("resilient_session.degraded.age", float(info.age))

    def end(
        self,
        status: int | None,
        error: BaseException | None,
        attempts: int,
        retries: int,
        breaker: str | None,
    ) -> None:
        """End the call span; its context stops being current."""
        from opentelemetry import context

        span = self._parent
        span.set_attribute("resilient_session.attempts", attempts)
        span.set_attribute("resilient_session.retries", retries)
        if attempts > 1:
            span.set_attribute("http.request.resend_count", attempts - 1)
        if breaker is not None:
            span.set_attribute("resilient_session.breaker.state", breaker)
        error_type = None
        if error is not None:
            error_type = f"{type(error).__module__}.{type(error).__qualname__}"
        try:
            _finish(span, status, error_type, error)
        finally:
            context.detach(self._token)


def _finish(span: Any, status: int | None, error_type: str | None, error: BaseException | None) -> None:
    from opentelemetry.trace import Status, StatusCode

    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if error_type is None and status is not None and status >= 400:
        error_type = str(status)
    if error_type is not None:
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, _describe(error) if error is not None else None))
    span.end()


def _describe(error: BaseException) -> str:
    # Any error may quote a URL, a header or a server's echo of the request: every one goes through the
    # scrubber (all encodings of every live secret, Bearer/Basic credentials, secret-named pairs).
    text = redact_log_text(str(error))
    return f"{type(error).__name__}: {text}"[:500]


def _http_attributes(method: str, raw_url: str, url: str) -> dict[str, Any]:
    """The HTTP semantic-convention attributes of a request: *url* is *raw_url* with credentials redacted."""
    attributes: dict[str, Any] = {}
    if method in _KNOWN_METHODS:
        attributes["http.request.method"] = method
    else:
        attributes["http.request.method"] = "_OTHER"
        attributes["http.request.method_original"] = method
    try:
        parts = urlsplit(raw_url)
        port = parts.port
    except ValueError:
        return attributes
    if "@" in parts.netloc:
        # The semantic conventions ask for both halves of userinfo to be replaced.
        url = url.replace(url.split("://", 1)[-1].split("@", 1)[0] + "@", "REDACTED:REDACTED@", 1)
    attributes["url.full"] = url
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    resolved = port if port is not None else _DEFAULT_PORTS.get(parts.scheme.lower())
    if resolved is not None:
        attributes["server.port"] = resolved
    return attributes
