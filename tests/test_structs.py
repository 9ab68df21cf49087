from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import msgspec
import pytest
import responses

from resilient_session import MalformedResponseError, ResilientSession
from resilient_session.errors import SchemaMismatchError
from resilient_session.normalization import SchemaDrift
from resilient_session.normalization.structs import is_struct_type

URL = "http://127.0.0.1:9/things"
SECRET = "sk_live_HIDDEN"


def _get(body: bytes | str, content_type: str = "application/json", **options: Any) -> Any:
    with responses.RequestsMock() as mock:
        mock.get(URL, body=body, headers={"Content-Type": content_type})
        with ResilientSession(**options) as session:
            response = session.get(URL)
    return response.normalized  # type: ignore[attr-defined]


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1


class Thing(msgspec.Struct):
    id: str
    size: int = 0


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (Colour, SECRET, "Invalid enum value"),
        (Level, 987654, "Invalid enum value"),
        (Literal["a", "b"], SECRET, "Invalid enum value"),
        (Annotated[str, msgspec.Meta(pattern="^x")], SECRET, "Expected `str` matching regex"),
        (Annotated[int, msgspec.Meta(ge=0)], -987654, "Expected `int` >= 0"),
        (Annotated[str, msgspec.Meta(max_length=2)], SECRET, "Expected `str` of length <= 2"),
    ],
)
def test_msgspec_messages_never_reach_the_error_with_the_value(
    annotation: Any, value: Any, expected: str
) -> None:
    Model = msgspec.defstruct("Model", [("field", annotation)])
    body = msgspec.json.encode({"field": value})
    with pytest.raises(SchemaMismatchError) as raised:
        _get(body).into(Model)
    error = raised.value
    assert [(m.path, m.expected) for m in error.mismatches] == [("field", expected)]
    for text in (str(error), repr(error), repr(error.details)):
        assert SECRET not in text and "987654" not in text, text
    assert error.__cause__ is None and error.__context__ is None


def test_a_struct_that_forbids_unknown_fields_fails_on_them_under_raise() -> None:
    class Closed(msgspec.Struct, forbid_unknown_fields=True):
        id: str

    with pytest.raises(SchemaMismatchError) as raised:
        _get(b'{"id": "a", "new": 1}').into(Closed)
    assert [(m.path, m.type) for m in raised.value.mismatches] == [("new", "extra_forbidden")]
    assert raised.value.unknown == ("new",)


def test_malformed_json_and_a_top_level_that_cannot_be_built() -> None:
    for body in (b'{"id": ', b'{"id": 7, "size": '):  # the second: a mismatch before the cut
        with pytest.raises(MalformedResponseError) as malformed:
            _get(body).into(Thing)
        assert not isinstance(malformed.value, SchemaMismatchError)
    with pytest.raises(SchemaMismatchError) as raised:
        _get(b"[1, 2]", drift="warn").into(Thing)
    assert [(m.path, m.expected, m.received) for m in raised.value.mismatches] == [
        ("", "Expected `object`", "array")
    ]


def test_raise_is_msgspec_strict_and_warn_is_lax() -> None:
    with pytest.raises(SchemaMismatchError) as raised:
        _get(b'{"id": "a", "size": "3"}').into(Thing)
    assert [(m.path, m.received) for m in raised.value.mismatches] == [("size", "string")]
    assert _get(b'{"id": "a", "size": "3"}', drift="warn").into(Thing) == Thing("a", 3)


def test_warn_gives_up_after_its_passes() -> None:
    body = msgspec.json.encode([{"id": i} for i in range(100)])  # every item: an int for a str
    drifts: list[SchemaDrift] = []
    with responses.RequestsMock() as mock:
        mock.get(URL, body=body, content_type="application/json")
        session = ResilientSession(drift="warn")
        session.events.on_schema_drift(drifts.append)
        with pytest.raises(SchemaMismatchError):
            session.get(URL).normalized.into(list[Thing])  # type: ignore[attr-defined]
    assert [d.raised for d in drifts] == [True]
    assert {m.pattern for m in drifts[0].mismatches} == {"[*].id"}


# -- happy path -------------------------------------------------------------------------------------


def test_struct_types_are_recognised_inside_containers() -> None:
    assert is_struct_type(Thing) and is_struct_type(list[Thing]) and is_struct_type(Thing | None)
    assert is_struct_type(dict[str, Annotated[Thing, "x"]])
    assert not is_struct_type(list[int]) and not is_struct_type(int)


class Node(msgspec.Struct):
    name: str
    children: list[Node] = []
    colour: Colour = Colour.RED


class Tagged(msgspec.Struct, rename="camel"):
    item_id: int
    display_name: str | None = None


def test_xml_recursion_renames_enums_nil_and_unknowns() -> None:
    body = (
        b'<n xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><name>a</name>'
        b"<children><name>b</name><colour>red</colour><odd>1</odd></children></n>"
    )
    drifts: list[SchemaDrift] = []
    with responses.RequestsMock() as mock:
        mock.get(URL, body=body, content_type="application/xml")
        session = ResilientSession()
        session.events.on_schema_drift(drifts.append)
        node = session.get(URL).normalized.into(Node)  # type: ignore[attr-defined]
    assert node == Node("a", [Node("b")])
    assert [d.unknown for d in drifts] == [("children[*].odd",)]
    nil = (
        b'<t xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><itemId>7</itemId>'
        b'<displayName xsi:nil="true"/></t>'
    )
    assert _get(nil, "application/xml").into(Tagged) == Tagged(7, None)
    assert _get(b'{"itemId": 7, "displayName": "x"}').into(Tagged) == Tagged(7, "x")
