"""``response.normalized.into(Struct)`` with msgspec ``Struct``s against a real server on 127.0.0.1: the
same listing from a JSON API and an XML API, attributes by encoded name, and drift under each policy,
with no value of the body in any message."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

import msgspec
import pytest

from resilient_session import MalformedResponseError, NotFoundError, ResilientSession
from resilient_session.errors import SchemaMismatchError
from resilient_session.normalization import SchemaDrift, reset_drift_warnings

from .test_typed_live import CASES, GOOD, JSON, PERSON, SECRET, XML, _as_xml, _no_values, _serve_listing
from .upstream import Reply, Upstream


class Owner(msgspec.Struct):
    ID: str
    DisplayName: str


class S3Object(msgspec.Struct):
    Key: str
    LastModified: datetime
    ETag: str
    Size: int
    StorageClass: str
    Owner: Owner


class Listing(msgspec.Struct):
    Name: str
    Prefix: str
    KeyCount: int
    MaxKeys: int
    IsTruncated: bool
    NextContinuationToken: str | None = None
    Contents: list[S3Object] = []


class User(msgspec.Struct):
    id: str
    email: str
    plan: str
    nickname: str | None = None


def _pages(session: ResilientSession, base: str) -> list[Listing]:
    pages = [session.get(f"{base}/list").normalized.into(Listing)]  # type: ignore[attr-defined]
    while pages[-1].IsTruncated:
        pages.append(session.get(f"{base}/list2").normalized.into(Listing))  # type: ignore[attr-defined]
    return pages


def test_one_struct_reads_the_json_api_and_the_xml_api_alike(upstream: Upstream) -> None:
    json_base = _serve_listing(upstream, "json")
    xml_base = _serve_listing(upstream, "xml")
    with ResilientSession(integration="s3") as session:
        from_json = _pages(session, json_base)
        from_xml = _pages(session, xml_base)
    assert from_json == from_xml
    assert [len(p.Contents) for p in from_xml] == [3, 1]  # the one-element page is still a list
    last = from_xml[1].Contents[0]
    assert (last.Key, last.Size, last.ETag) == ("photos/0003.jpg", 1003, f'"{3:032x}"')
    assert last.LastModified == datetime(2024, 5, 4, 10, 0, tzinfo=timezone.utc)
    assert from_xml[1].NextContinuationToken is None
    assert upstream.count("/xml/list") == upstream.count("/json/list") == 1


class Price(msgspec.Struct):
    currency: str = msgspec.field(name="@currency")
    amount: float = msgspec.field(name="#text")


class Item(msgspec.Struct):
    id: int = msgspec.field(name="@id")
    name: str
    price: Price
    tags: list[str] = []


def test_attributes_and_text_by_encoded_name(upstream: Upstream) -> None:
    body = (
        b'<items><item id="7"><name>Pen</name><price currency="EUR"> 12.50 </price>'
        b"<tags><tag>a</tag><tag>b</tag></tags></item>"
        b'<item id="8"><name>Ink</name><price currency="USD">3</price><tags>c</tags></item></items>'
    )
    url = upstream.script("/items", Reply(200, body, XML))
    with ResilientSession() as session:
        items = session.get(url).normalized.into(list[Item])  # type: ignore[attr-defined]
    assert items == [
        Item(7, "Pen", Price("EUR", 12.5), ["a", "b"]),
        Item(8, "Ink", Price("USD", 3.0), ["c"]),  # one tag: still a list
    ]


def _call(
    upstream: Upstream, case: str, fmt: str, policy: str, caplog: pytest.LogCaptureFixture
) -> tuple[Any, list[SchemaDrift], list[logging.LogRecord]]:
    data = CASES[case]
    body = json.dumps(data).encode() if fmt == "json" else _as_xml(data)
    url = upstream.script(f"/structs/{case}", Reply(200, body, JSON if fmt == "json" else XML))
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
        user, drifts, records = _call(upstream, "added", fmt, policy, caplog)
        assert user == User(id="u-1", email=PERSON, plan=SECRET)
        assert [(d.unknown, d.mismatches, d.raised) for d in drifts] == [(("api_token",), (), False)]
        assert len(records) == 1 and "api_token: not declared by User" in records[0].getMessage()
        _no_values(*(r.getMessage() for r in records), repr(drifts))
        user, drifts, records = _call(upstream, "added", fmt, policy, caplog)
        assert records == []
        # JSON: a route is looked at again at most once a minute (looking costs an untyped decode).
        assert len(drifts) == (0 if fmt == "json" else 1)
    reset_drift_warnings()
    user, drifts, records = _call(upstream, "added", fmt, "ignore", caplog)
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
    reset_drift_warnings()
    error, drifts, records = _call(upstream, case, fmt, "raise", caplog)
    if fmt == "xml" and case == "type_changed":
        assert error == User(id="987654321", email=PERSON, plan=SECRET)  # XML text: 987654321 is a valid str
        return
    assert isinstance(error, SchemaMismatchError) and isinstance(error, MalformedResponseError)
    assert [(m.path, m.received) for m in error.mismatches] == [(path, received)]
    assert (error.status, error.integration, error.model, error.route) == (
        200,
        "crm",
        "User",
        f"GET /structs/{case}",
    )
    assert len(records) == 1 and f"{path}: " in records[0].getMessage()
    assert [d.raised for d in drifts] == [True]
    assert error.__cause__ is None and error.__context__ is None  # msgspec's message may quote the value
    _no_values(str(error), repr(error), repr(error.details), records[0].getMessage(), repr(drifts))


class Page(msgspec.Struct):
    users: list[User]
    total: int
    note: str = "none"


def test_warn_returns_what_converts_and_ignore_reports_nothing(
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
    url = upstream.script("/structs/page", Reply(200, body, JSON))
    for policy in ("warn", "ignore"):
        reset_drift_warnings()
        caplog.clear()
        drifts: list[SchemaDrift] = []
        session = ResilientSession(integration="crm", drift=policy)
        session.events.on_schema_drift(drifts.append)
        with caplog.at_level(logging.WARNING, logger="resilient_session"), session:
            page = session.get(url).normalized.into(Page)  # type: ignore[attr-defined]
        assert [u.id for u in page.users] == ["u-1", "u-3", "u-5"]
        assert page.users[1].nickname is None and page.note == "none" and page.total == 5
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        if policy == "ignore":
            assert (drifts, warnings) == ([], [])
            continue
        assert len(drifts) == 1 and len(warnings) == 1
        assert drifts[0].unknown == ("users[*].email_address", "users[*].extra")
        # msgspec stops at the first mismatch: each pass of the repair names the next one.
        assert {m.pattern for m in drifts[0].mismatches} == {
            "users[*].id",
            "users[*].nickname",
            "users[*].email",
            "note",
        }
        assert "users[*].id: Expected `str` (got integer)" in warnings[0].getMessage()
        _no_values(warnings[0].getMessage(), repr(drifts))


def test_an_error_status_and_a_truncated_body_keep_their_errors(upstream: Upstream) -> None:
    missing = upstream.script("/structs/missing", Reply(404, b'{"id": "u-1"}', JSON))
    cut = upstream.script("/structs/cut", Reply(200, b'{"id": "u-1", "email": ', JSON))
    with ResilientSession() as session:
        with pytest.raises(NotFoundError):
            session.get(missing).normalized.into(User)  # type: ignore[attr-defined]
        with pytest.raises(MalformedResponseError) as raised:
            session.get(cut).normalized.into(User)  # type: ignore[attr-defined]
    assert not isinstance(raised.value, SchemaMismatchError)
