"""OpenTelemetry spans: one per call, one child per attempt, ``traceparent`` on the wire."""

from __future__ import annotations

import sys

import pytest
import responses
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from resilient_session import APIConnectionError, CircuitBreaker, ResilientSession, RetryPolicy
from resilient_session.observe.tracing import tracer_for
from tests.conftest import free_port
from tests.integration.upstream import Reply, Upstream

FAST = RetryPolicy(3, backoff_factor=0.0)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def split(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    spans = exporter.get_finished_spans()
    (parent,) = [s for s in spans if s.kind is SpanKind.INTERNAL]
    children = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(spans) == len(children) + 1
    return parent, children


def traceparent(value: str) -> tuple[str, str]:
    version, trace_id, span_id, _flags = value.split("-")
    assert version == "00"
    return trace_id, span_id


@pytest.mark.integration
def test_one_parent_and_a_child_per_attempt_each_with_its_traceparent(
    upstream: Upstream, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    url = upstream.script("/flaky", Reply(503), Reply(502), Reply(200))
    session = ResilientSession(retry=FAST, tracing=provider, integration="flaky-api")
    assert session.get(url + "?access_token=SECRET-T").status_code == 200
    parent, children = split(exporter)
    assert parent.name == "GET flaky-api"
    assert len(children) == 3
    assert all(c.parent is not None and c.parent.span_id == parent.context.span_id for c in children)
    assert {c.context.trace_id for c in children} == {parent.context.trace_id}
    assert [c.attributes.get("http.response.status_code") for c in children] == [503, 502, 200]  # type: ignore[union-attr]
    assert [c.attributes.get("http.request.resend_count") for c in children] == [None, 1, 2]  # type: ignore[union-attr]
    assert [c.attributes.get("error.type") for c in children] == ["503", "502", None]  # type: ignore[union-attr]
    assert parent.attributes is not None
    assert parent.attributes["http.request.resend_count"] == 2
    assert parent.attributes["resilient_session.attempts"] == 3
    assert parent.attributes["resilient_session.retries"] == 2
    assert parent.attributes["http.response.status_code"] == 200
    assert parent.status.status_code is not StatusCode.ERROR
    # Each attempt carried its own span as the parent of whatever the server does.
    sent = [traceparent(call.headers["traceparent"]) for call in upstream.calls["/flaky"]]
    assert sent == [(f"{parent.context.trace_id:032x}", f"{c.context.span_id:016x}") for c in children]
    for span in (parent, *children):
        assert span.attributes is not None
        assert span.attributes["url.full"] == url + "?access_token=***"
        assert span.attributes["http.request.method"] == "GET"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == upstream.port


@pytest.mark.integration
def test_a_failed_call_marks_its_spans_as_errors(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    port = free_port()
    session = ResilientSession(retry=RetryPolicy(1, backoff_factor=0), tracing=provider)
    with pytest.raises(APIConnectionError):
        session.get(f"http://127.0.0.1:{port}/x")
    parent, children = split(exporter)
    assert len(children) == 2
    assert parent.status.status_code is StatusCode.ERROR
    assert parent.attributes is not None
    assert parent.attributes["error.type"] == "resilient_session.errors.APIConnectionError"
    assert all(c.status.status_code is StatusCode.ERROR and c.attributes.get("error.type") for c in children)  # type: ignore[union-attr]
    assert "http.response.status_code" not in parent.attributes


@pytest.mark.integration
def test_redirect_hops_are_attempts_too(
    upstream: Upstream, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    target = upstream.script("/new", Reply(200))
    url = upstream.script("/old", Reply(301, headers={"Location": target}))
    ResilientSession(tracing=provider).get(url)
    _, children = split(exporter)
    assert [c.attributes.get("http.response.status_code") for c in children] == [301, 200]  # type: ignore[union-attr]
    assert [c.attributes.get("http.request.resend_count") for c in children] == [None, 1]  # type: ignore[union-attr]
    assert children[0].attributes is not None and children[1].attributes is not None
    # Each CLIENT span describes the request it stands for; the call span keeps the URL the user gave.
    assert children[0].attributes["url.full"] == url
    assert children[1].attributes["url.full"] == target
    parent, _ = split(exporter)
    assert parent.attributes is not None and parent.attributes["url.full"] == url


@pytest.mark.integration
def test_a_303_hop_span_names_the_method_it_sends(
    upstream: Upstream, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    target = upstream.script("/done", Reply(200))
    url = upstream.script("/create", Reply(303, headers={"Location": target + "?token=HOP-SECRET"}))
    ResilientSession(tracing=provider).post(url, data=b"x")
    parent, children = split(exporter)
    assert [c.name for c in children] == ["POST", "GET"]
    assert children[1].attributes is not None
    assert children[1].attributes["http.request.method"] == "GET"
    assert children[1].attributes["url.full"] == target + "?token=***"
    assert parent.name == "POST"


def test_attempt_spans_also_under_responses_mocks(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with responses.RequestsMock() as mock:
        mock.get("https://api.test/x", status=503)
        mock.get("https://api.test/x", status=200)
        ResilientSession(retry=FAST, tracing=provider).get("https://api.test/x")
        assert "traceparent" in mock.calls[0].request.headers
    parent, children = split(exporter)
    assert [c.attributes.get("http.response.status_code") for c in children] == [503, 200]  # type: ignore[union-attr]
    assert parent.attributes is not None
    assert parent.attributes["server.port"] == 443


def test_the_call_span_is_a_child_of_the_callers_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("app")
    with responses.RequestsMock() as mock, tracer.start_as_current_span("handle order") as outer:
        mock.get("https://api.test/x", status=200)
        ResilientSession(tracing=provider).get("https://api.test/x")
    (call,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.INTERNAL and s.name == "GET"]
    assert call.parent is not None
    assert call.parent.span_id == outer.get_span_context().span_id


def test_breaker_state_is_an_attribute(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with responses.RequestsMock() as mock:
        mock.get("https://api.test/x", status=200)
        ResilientSession(tracing=provider, breaker=CircuitBreaker()).get("https://api.test/x")
    parent, _ = split(exporter)
    assert parent.attributes is not None
    assert parent.attributes["resilient_session.breaker.state"] == "closed"


def test_tracing_false_makes_no_span_and_sends_no_traceparent(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with responses.RequestsMock() as mock:
        mock.get("https://api.test/x", status=200)
        ResilientSession(tracing=False).get("https://api.test/x")
        assert "traceparent" not in mock.calls[0].request.headers
    assert exporter.get_finished_spans() == ()


def test_without_a_configured_provider_nothing_is_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    # This test process never calls set_tracer_provider: the global one is the API's proxy.
    assert tracer_for(True) is None
    monkeypatch.delitem(sys.modules, "opentelemetry.trace")
    assert tracer_for(True) is None  # and without OpenTelemetry imported, it is not even imported
    assert "opentelemetry.trace" not in sys.modules


def test_the_span_status_description_is_scrubbed_of_every_encoding() -> None:
    from resilient_session import APIError, APIKeyAuth
    from resilient_session.observe.tracing import _describe
    from tests.secret_forms import forms, leaks

    secret = "k+y/with=specials:@ ok"
    auth = APIKeyAuth(secret)  # a live auth object: its key is a known secret
    for form in forms(secret).values():
        for error in (RuntimeError(f"upstream said {form}"), APIError(f"upstream said {form}")):
            assert not leaks(_describe(error), secret)
    assert auth.secret_values == (secret,)
