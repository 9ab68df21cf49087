"""``response.normalized.into(Model)`` against a real server on 127.0.0.1: one model for a JSON API and an
XML API serving the same data, XML attributes, text and namespaces, and schema drift under each policy."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import AliasChoices, BaseModel, Field

from resilient_session import MalformedResponseError, NotFoundError, ResilientSession
from resilient_session.errors import SchemaMismatchError
from resilient_session.normalization import SchemaDrift, reset_drift_warnings

from .upstream import Reply, Upstream

JSON = {"Content-Type": "application/json"}
XML = {"Content-Type": "application/xml"}
# Values no message may ever show: they stand for personal data and secrets in a body.
SECRET = "sk_live_SECRETVALUE"
PERSON = "jane.doe@example.com"


class Owner(BaseModel):
    ID: str
    DisplayName: str


class S3Object(BaseModel):
    Key: str
    LastModified: datetime
    ETag: str
    Size: int
    StorageClass: str
    Owner: Owner


class Listing(BaseModel):
    Name: str
    Prefix: str
    KeyCount: int
    MaxKeys: int
    IsTruncated: bool
    NextContinuationToken: str | None = None
    Contents: list[S3Object] = []


def _objects(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "Key": f"photos/{i:04d}.jpg",
            "LastModified": f"2024-05-0{1 + i % 9}T10:00:00.000Z",
            "ETag": f'"{i:032x}"',
            "Size": 1000 + i,
            "StorageClass": "STANDARD",
            "Owner": {"ID": f"{i:064x}", "DisplayName": PERSON},
        }
        for i in range(start, start + count)
    ]


def _page_json(objects: list[dict[str, Any]], token: str | None) -> bytes:
    page = {
        "Name": "bucket",
        "Prefix": "photos/",
        "KeyCount": len(objects),
        "MaxKeys": 3,
        "IsTruncated": token is not None,
        "Contents": objects,
    }
    if token is not None:
        page["NextContinuationToken"] = token
    return json.dumps(page).encode()


def _page_xml(objects: list[dict[str, Any]], token: str | None) -> bytes:
    contents = "".join(
        f"<Contents><Key>{o['Key']}</Key><LastModified>{o['LastModified']}</LastModified>"
        f"<ETag>&quot;{o['ETag'][1:-1]}&quot;</ETag><Size>{o['Size']}</Size>"
        f"<StorageClass>{o['StorageClass']}</StorageClass>"
        f"<Owner><ID>{o['Owner']['ID']}</ID><DisplayName>{o['Owner']['DisplayName']}</DisplayName></Owner>"
        "</Contents>"
        for o in objects
    )
    next_token = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>bucket</Name><Prefix>photos/</Prefix><KeyCount>{len(objects)}</KeyCount>"
        f"<MaxKeys>3</MaxKeys><IsTruncated>{'true' if token else 'false'}</IsTruncated>{next_token}"
        f"{contents}</ListBucketResult>"
    ).encode()


def _serve_listing(upstream: Upstream, fmt: str) -> str:
    """Two pages: three objects, then one (a one-element list), continued by a token."""
    page = _page_json if fmt == "json" else _page_xml
    headers = JSON if fmt == "json" else XML
    upstream.script(f"/{fmt}/list", Reply(200, page(_objects(0, 3), "tok-2"), headers))
    upstream.script(f"/{fmt}/list2", Reply(200, page(_objects(3, 1), None), headers))
    return f"{upstream.url}/{fmt}"


def _all_pages(session: ResilientSession, base: str) -> list[Listing]:
    pages = [session.get(f"{base}/list").normalized.into(Listing)]  # type: ignore[attr-defined]
    while pages[-1].IsTruncated:
        assert pages[-1].NextContinuationToken == "tok-2"
        pages.append(session.get(f"{base}/list2").normalized.into(Listing))  # type: ignore[attr-defined]
    return pages


def test_one_model_reads_the_json_api_and_the_xml_api_alike(upstream: Upstream) -> None:
    json_base = _serve_listing(upstream, "json")
    xml_base = _serve_listing(upstream, "xml")
    with ResilientSession(integration="s3") as session:
        from_json = _all_pages(session, json_base)
        from_xml = _all_pages(session, xml_base)
    assert from_json == from_xml
    assert [len(p.Contents) for p in from_xml] == [3, 1]  # the one-element page is still a list
    last = from_xml[1].Contents[0]
    assert (last.Key, last.Size, last.ETag) == ("photos/0003.jpg", 1003, f'"{3:032x}"')
    assert last.LastModified == datetime(2024, 5, 4, 10, 0, tzinfo=timezone.utc)
    assert from_xml[0].IsTruncated is True and from_xml[1].IsTruncated is False
    assert from_xml[1].NextContinuationToken is None
    assert upstream.count("/xml/list") == upstream.count("/xml/list2") == 1


class Price(BaseModel):
    currency: str
    amount: float = Field(validation_alias=AliasChoices("amount", "#text"))


class Item(BaseModel):
    id: int  # an attribute: <item id="7">
    kind: str
    name: str
    price: Price
    tags: list[str] = []
    # A clash: the attribute sku="A-1" and the child <sku>. The first choice present wins (pydantic's rule
    # for AliasChoices), so "@sku" first takes the attribute; JSON's "sku" is still read.
    sku: str = Field(validation_alias=AliasChoices("@sku", "sku"))
    sku_label: str = Field(validation_alias=AliasChoices("sku_label", "sku"))


def test_attributes_text_wrapped_lists_and_a_name_clash(upstream: Upstream) -> None:
    body = (
        b'<catalog><item id="7" kind="tool" sku="A-1"><name> Hammer </name>'
        b'<price currency="EUR">12.50</price><tags><tag>hand</tag><tag>steel</tag></tags>'
        b"<sku>hammer, 500 g</sku></item>"
        b'<item id="8" kind="tool" sku="B-2"><name>Saw</name><price currency="USD">20</price>'
        b"<sku>saw</sku></item></catalog>"
    )
    url = upstream.script("/catalog", Reply(200, body, XML))
    with ResilientSession() as session:
        items = session.get(url).normalized.into(list[Item])  # type: ignore[attr-defined]
    assert items == [
        Item.model_validate(
            {
                "id": 7,
                "kind": "tool",
                "name": "Hammer",
                "price": {"currency": "EUR", "amount": 12.5},
                "tags": ["hand", "steel"],
                "sku": "A-1",
                "sku_label": "hammer, 500 g",
            }
        ),
        Item.model_validate(
            {
                "id": 8,
                "kind": "tool",
                "name": "Saw",
                "price": {"currency": "USD", "amount": 20},
                "sku": "B-2",
                "sku_label": "saw",
            }
        ),
    ]


class Entry(BaseModel):
    title: str
    media_title: str = Field(validation_alias=AliasChoices("media_title", "{urn:media}title"))
    updated: datetime


class Feed(BaseModel):
    title: str
    entry: list[Entry]


def test_a_namespaced_document(upstream: Upstream) -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:m="urn:media" '
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        b"<title>News</title>"
        b'<entry xsi:type="post"><m:title>Clip</m:title><title>First</title>'
        b"<updated>2024-01-02T03:04:05Z</updated></entry></feed>"
    )
    url = upstream.script("/feed", Reply(200, body, {"Content-Type": "application/atom+xml"}))
    drifts: list[SchemaDrift] = []
    with ResilientSession() as session:
        session.events.on_schema_drift(drifts.append)
        feed = session.get(url).normalized.into(Feed)  # type: ignore[attr-defined]
    assert feed.title == "News"
    assert [(e.title, e.media_title) for e in feed.entry] == [("First", "Clip")]  # a list of one
    assert drifts == []  # xmlns declarations and xsi:type are not undeclared fields


# -- drift ------------------------------------------------------------------------------------------


class User(BaseModel):
    id: str
    email: str
    plan: str
    nickname: str | None = None


GOOD = {"id": "u-1", "email": PERSON, "plan": SECRET}
CASES: dict[str, dict[str, Any]] = {
    # A field added: an API announcing a change.
    "added": {**GOOD, "api_token": SECRET},
    # A field renamed: email -> email_address.
    "renamed": {"id": "u-1", "email_address": PERSON, "plan": SECRET},
    # A type changed: the id is a number now.
    "type_changed": {**GOOD, "id": 987654321},
    # null where a value is required.
    "null": {**GOOD, "plan": None},
}


def _as_xml(data: dict[str, Any]) -> bytes:
    parts = []
    for key, value in data.items():
        if value is None:
            xsi = "http://www.w3.org/2001/XMLSchema-instance"
            parts.append(f'<{key} xmlns:xsi="{xsi}" xsi:nil="true"/>')
        else:
            parts.append(f"<{key}>{value}</{key}>")
    return f"<user>{''.join(parts)}</user>".encode()


def _no_values(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and PERSON not in text and "987654321" not in text, text


def _drift_call(
    upstream: Upstream, case: str, fmt: str, policy: str, caplog: pytest.LogCaptureFixture
) -> tuple[Any, list[SchemaDrift], list[logging.LogRecord]]:
    data = CASES[case]
    body = json.dumps(data).encode() if fmt == "json" else _as_xml(data)
    url = upstream.script(f"/users/{case}", Reply(200, body, JSON if fmt == "json" else XML))
    drifts: list[SchemaDrift] = []
    caplog.clear()
    session = ResilientSession(integration="crm", drift=policy)  # type: ignore[arg-type]
    session.events.on_schema_drift(drifts.append)
    with caplog.at_level(logging.WARNING, logger="resilient_session"), session:
        try:
            outcome: Any = session.get(url).normalized.into(User)  # type: ignore[attr-defined]
        except SchemaMismatchError as exc:
            outcome = exc
    records = [r for r in caplog.records if r.name == "resilient_session" and r.levelno == logging.WARNING]
    return outcome, drifts, records


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_field_added_is_reported_and_never_fails(
    upstream: Upstream, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    for policy in ("raise", "warn"):
        reset_drift_warnings()
        user, drifts, records = _drift_call(upstream, "added", fmt, policy, caplog)
        assert user == User(id="u-1", email=PERSON, plan=SECRET)
        assert [(d.unknown, d.mismatches, d.raised, d.policy) for d in drifts] == [
            (("api_token",), (), False, policy)
        ]
        assert len(records) == 1
        assert "crm GET /users/added" in records[0].getMessage()
        assert "api_token: not declared by User" in records[0].getMessage()
        _no_values(*(r.getMessage() for r in records), repr(drifts))
        # Again: no second WARNING for the same integration, route and path in this process.
        user, drifts, records = _drift_call(upstream, "added", fmt, policy, caplog)
        assert user == User(id="u-1", email=PERSON, plan=SECRET)
        assert records == []
        # JSON: once found on a route, undeclared fields are looked for again at most once a minute
        # (looking costs a second validation); XML's mapping finds them for free, every time.
        assert len(drifts) == (0 if fmt == "json" else 1)
    reset_drift_warnings()
    user, drifts, records = _drift_call(upstream, "added", fmt, "ignore", caplog)
    assert user == User(id="u-1", email=PERSON, plan=SECRET)
    assert (drifts, records) == ([], [])


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("case", "path", "received"),
    [("renamed", "email", "nothing"), ("type_changed", "id", "integer"), ("null", "plan", "null")],
)
def test_a_body_that_does_not_fit_raises_under_raise(
    upstream: Upstream, caplog: pytest.LogCaptureFixture, fmt: str, case: str, path: str, received: str
) -> None:
    if fmt == "xml" and case == "type_changed":
        received = "string"  # every XML value is text: 987654321 is a valid str, so the id fits
    error, drifts, records = _drift_call(upstream, case, fmt, "raise", caplog)
    if fmt == "xml" and case == "type_changed":
        assert error == User(id="987654321", email=PERSON, plan=SECRET)
        return
    assert isinstance(error, SchemaMismatchError) and isinstance(error, MalformedResponseError)
    assert [(m.path, m.received) for m in error.mismatches] == [(path, received)]
    assert (error.code, error.status, error.integration, error.model) == (
        "schema_mismatch",
        200,
        "crm",
        "User",
    )
    assert error.request_id and error.route == f"GET /users/{case}"
    assert f"{upstream.url}/users/{case}" in str(error)
    assert len(records) == 1 and f"{path}: " in records[0].getMessage()
    assert [d.raised for d in drifts] == [True]
    assert error.__cause__ is None and error.__context__ is None  # pydantic's error quotes the input
    _no_values(str(error), repr(error), repr(error.details), records[0].getMessage(), repr(drifts))
    if case == "renamed":
        assert error.unknown == ("email_address",)


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("case", ["renamed", "type_changed", "null"])
def test_warn_and_ignore_raise_when_the_top_level_cannot_be_built(
    upstream: Upstream, caplog: pytest.LogCaptureFixture, fmt: str, case: str
) -> None:
    if fmt == "xml" and case == "type_changed":
        return  # fits (see above)
    for policy in ("warn", "ignore"):
        error, drifts, records = _drift_call(upstream, case, fmt, policy, caplog)
        # A required field of the top-level object failed: there is nothing that validates to return.
        assert isinstance(error, SchemaMismatchError)
        _no_values(str(error), *(r.getMessage() for r in records))
        assert len(drifts) == (1 if policy == "warn" else 0)


class Page(BaseModel):
    users: list[User]
    total: int
    note: str = "none"


def test_warn_returns_what_validates_and_reports_each_path_once(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    users = [
        GOOD,
        {**GOOD, "id": 987654321},  # type changed: this item is left out
        {**GOOD, "id": "u-3", "nickname": 7},  # a bad value of a field with a default: the default
        {"id": "u-4", "email_address": PERSON, "plan": SECRET},  # renamed: left out
        {**GOOD, "id": "u-5", "extra": SECRET},  # an added field: kept, reported
    ]
    body = json.dumps({"users": users, "total": 5, "note": {"text": SECRET}}).encode()
    url = upstream.script("/page", Reply(200, body, JSON))
    drifts: list[SchemaDrift] = []
    session = ResilientSession(integration="crm", drift="warn")
    session.events.on_schema_drift(drifts.append)
    with caplog.at_level(logging.WARNING, logger="resilient_session"), session:
        pages = [session.get(url).normalized.into(Page) for _ in range(3)]  # type: ignore[attr-defined]
    assert [u.id for u in pages[0].users] == ["u-1", "u-3", "u-5"]
    assert pages[0].users[1].nickname is None
    assert pages[0].total == 5 and pages[0].note == "none"  # the bad value fell back to the default
    assert pages[0] == pages[1] == pages[2]
    assert len(drifts) == 3  # the event on every call
    assert {m.pattern for m in drifts[0].mismatches} == {
        "users[*].id",
        "users[*].nickname",
        "users[*].email",
        "note",
    }
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one WARNING for the process, not one per call
    message = warnings[0].getMessage()
    assert "users[*].id: Input should be a valid string (got integer)" in message
    assert "users[*].email: Field required (got nothing)" in message
    _no_values(message, repr(drifts))


def test_an_error_status_raises_the_status_error_not_a_mismatch(upstream: Upstream) -> None:
    url = upstream.script(
        "/missing",
        Reply(404, b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>", XML),
    )
    envelope = upstream.script(
        "/fault",
        Reply(
            200,
            b'{"type": "urn:problem:quota", "title": "Quota exceeded", "status": 200}',
            {"Content-Type": "application/problem+json"},
        ),
    )
    with ResilientSession() as session:
        with pytest.raises(NotFoundError, match="gone"):
            session.get(url).normalized.into(User)  # type: ignore[attr-defined]
        with pytest.raises(MalformedResponseError) as raised:
            session.get(envelope).normalized.into(User)  # type: ignore[attr-defined]
    assert not isinstance(raised.value, SchemaMismatchError)
    assert raised.value.code == "urn:problem:quota"


def test_a_truncated_body_is_malformed_not_drift(upstream: Upstream) -> None:
    body = _page_json(_objects(0, 3), None)
    url = upstream.script("/cut", Reply(200, body[:-40], JSON))
    with ResilientSession() as session, pytest.raises(MalformedResponseError) as raised:
        session.get(url).normalized.into(Listing)  # type: ignore[attr-defined]
    assert not isinstance(raised.value, SchemaMismatchError)
    assert raised.value.code == "malformed_response"


def test_drift_is_a_span_event_on_the_current_span(upstream: Upstream) -> None:
    url = upstream.script("/users/42", Reply(200, json.dumps(CASES["type_changed"]).encode(), JSON))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with ResilientSession(integration="crm", drift="warn", tracing=provider) as session:
        response = session.get(url)
        handler_span = provider.get_tracer("app").start_as_current_span("handler")
        with handler_span, pytest.raises(SchemaMismatchError):
            response.normalized.into(User)  # type: ignore[attr-defined]
    handler = next(s for s in exporter.get_finished_spans() if s.name == "handler")
    (event,) = [e for e in handler.events if e.name == "schema drift"]
    attributes = dict(event.attributes or {})
    assert attributes["resilient_session.integration"] == "crm"
    assert attributes["resilient_session.route"] == "GET /users/{id}"
    assert list(attributes["resilient_session.drift.paths"]) == ["id"]  # type: ignore[arg-type]
    _no_values(repr(attributes))


def test_drift_counter_in_a_fresh_process(upstream: Upstream) -> None:
    # The counter uses the global meter provider, which a process sets once: its own process.
    url = upstream.script("/users/7/orders", Reply(200, json.dumps(CASES["type_changed"]).encode(), JSON))
    code = textwrap.dedent(
        f"""
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from pydantic import BaseModel
        from resilient_session import ResilientSession

        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

        class User(BaseModel):
            id: str
            email: str
            plan: str

        with ResilientSession(integration="crm", drift="warn") as session:
            for _ in range(3):
                try:
                    session.get({url!r}).normalized.into(User)
                except Exception as exc:
                    print(type(exc).__name__)
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        print(metric.name, sorted(point.attributes.items()), point.value)
        """
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["SchemaMismatchError"] * 3
    expected = [
        ("drift", "mismatch"),
        ("integration", "crm"),
        ("path", "id"),
        ("route", "GET /users/{id}/orders"),
    ]
    assert lines[3:] == [f"resilient_session.schema_drift {expected} 3"]
    assert upstream.count("/users/7/orders") == 3


def test_a_body_reset_mid_way_is_malformed_and_retryable_not_drift(upstream: Upstream) -> None:
    body = _page_json(_objects(0, 3), None)
    url = upstream.script("/reset", Reply(200, body, JSON, reset="mid"))
    with ResilientSession() as session:
        response = session.get(url, stream=True)  # the body is read by into(), and breaks off there
        with pytest.raises(MalformedResponseError) as raised:
            response.normalized.into(Listing)  # type: ignore[attr-defined]
    assert not isinstance(raised.value, SchemaMismatchError)
    assert raised.value.details.get("reason") == "incomplete"


def test_a_dripped_xml_body_is_read_whole(upstream: Upstream) -> None:
    body = _page_xml(_objects(0, 1), None)
    url = upstream.script("/drip", Reply(200, body, XML, drip=0.0005))
    with ResilientSession() as session:
        page = session.get(url).normalized.into(Listing)  # type: ignore[attr-defined]
    assert [o.Key for o in page.Contents] == ["photos/0000.jpg"]
    assert upstream.count("/drip") == 1
