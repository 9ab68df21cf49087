"""``response.normalized.into(Type)`` with ``responses``: what fails and how, then the types it reads."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
from typing import Annotated, Any, Literal

import pytest
import requests
import responses
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from resilient_session import MalformedResponseError, ResilientSession, ServerError, normalize
from resilient_session.errors import SchemaMismatchError
from resilient_session.normalization import Mismatch, Normalizer, SchemaDrift
from resilient_session.normalization import typed as typed_module
from resilient_session.normalization.drift import route_of

URL = "http://127.0.0.1:9/things"
SECRET = "sk_live_HIDDEN"


def _get(
    body: bytes | str, content_type: str | None = "application/json", status: int = 200, **kw: Any
) -> Any:
    headers = {"Content-Type": content_type} if content_type else {}
    options = kw.pop("session", {})
    with responses.RequestsMock() as mock:
        mock.get(URL, body=body, status=status, headers=headers, **kw)
        with ResilientSession(**options) as session:
            response = session.get(URL)
    return response.normalized  # type: ignore[attr-defined]


class Thing(BaseModel):
    id: str
    size: int = 0


# -- failures ---------------------------------------------------------------------------------------


def test_a_validator_message_quoting_the_value_never_reaches_the_error() -> None:
    class Checked(BaseModel):
        id: str

        @field_validator("id")
        @classmethod
        def no_live_keys(cls, value: str) -> str:
            if value.startswith("sk_live"):
                raise ValueError(f"live key {value} not allowed")
            return value

    with pytest.raises(SchemaMismatchError) as raised:
        _get(json.dumps({"id": SECRET})).into(Checked)
    error = raised.value
    assert error.mismatches == (Mismatch("id", "Value error", "string", "value_error"),)
    assert SECRET not in str(error) and SECRET not in repr(error.details)


def test_custom_error_types_and_tags_from_the_body_are_not_quoted() -> None:
    class Cat(BaseModel):
        kind: Literal["cat"]

    class Dog(BaseModel):
        kind: Literal["dog"]

    class Pet(BaseModel):
        pet: Annotated[Cat | Dog, Field(discriminator="kind")]
        code: str

        @field_validator("code")
        @classmethod
        def custom(cls, value: str) -> str:
            raise PydanticCustomError("bad_code", "code {code} is wrong", {"code": value})

    with pytest.raises(SchemaMismatchError) as raised:
        _get(json.dumps({"pet": {"kind": SECRET}, "code": SECRET})).into(Pet)
    by_path = {m.path: m for m in raised.value.mismatches}
    assert by_path["pet"].type == "union_tag_invalid"
    assert by_path["pet"].expected == "union_tag_invalid"  # its message would quote the tag
    assert by_path["code"].expected == "bad_code"
    assert SECRET not in str(raised.value)


def test_expected_values_from_the_type_are_named() -> None:
    class Order(BaseModel):
        state: Literal["open", "closed"]
        qty: Annotated[int, Field(gt=0)]

    with pytest.raises(SchemaMismatchError) as raised:
        _get(b'{"state": "lost", "qty": -3}').into(Order)
    assert [str(m) for m in raised.value.mismatches] == [
        "state: Input should be 'open' or 'closed' (got string)",
        "qty: Input should be greater than 0 (got integer)",
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "received"),
    [(b"", "application/json", "an empty body"), (b"hello", "text/plain", "a text body")],
)
def test_a_body_that_is_not_json_or_xml_is_a_mismatch(
    body: bytes, content_type: str, received: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="resilient_session"),
        pytest.raises(SchemaMismatchError) as raised,
    ):
        _get(body, content_type).into(Thing, drift="warn")  # nothing to return, whatever the policy
    assert [(m.path, m.received, m.type) for m in raised.value.mismatches] == [("", received, "body_format")]
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"(body): a JSON or XML body for Thing (got {received})" in record.getMessage()


def test_malformed_too_large_and_unsafe_bodies_keep_their_own_errors() -> None:
    with pytest.raises(MalformedResponseError) as malformed:
        _get(b'{"id": "x",').into(Thing)
    assert type(malformed.value) is MalformedResponseError and malformed.value.code == "malformed_response"

    big = json.dumps({"id": "x" * 200}).encode()
    with responses.RequestsMock() as mock:
        mock.get(URL, body=big, content_type="application/json")
        response = requests.get(URL, timeout=5)
    with pytest.raises(MalformedResponseError) as too_large:
        normalize(response, Normalizer(max_body_size=100)).into(Thing)
    assert type(too_large.value) is MalformedResponseError and too_large.value.code == "body_too_large"

    bomb = b'<!DOCTYPE t [<!ENTITY e "boom">]><t><id>&e;</id></t>'
    with pytest.raises(MalformedResponseError) as unsafe:
        _get(bomb, "application/xml").into(Thing)
    assert type(unsafe.value) is MalformedResponseError
    assert "entity" in str(unsafe.value)


def test_error_statuses_and_envelopes_raise_their_typed_errors() -> None:
    with pytest.raises(ServerError):
        _get(b'{"error": {"message": "down"}}', status=503).into(Thing)
    fault = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
        b"<faultcode>soap:Server</faultcode><faultstring>broken</faultstring></soap:Fault></soap:Body>"
        b"</soap:Envelope>"
    )
    with pytest.raises(MalformedResponseError) as raised:
        _get(fault, "text/xml").into(Thing)
    assert type(raised.value) is MalformedResponseError and "broken" in str(raised.value)


def test_a_bad_policy_is_refused() -> None:
    view = _get(b'{"id": "x"}')
    with pytest.raises(ValueError, match='drift: expected one of "raise", "warn", "ignore"; got "loud"'):
        view.into(Thing, drift="loud")


def test_a_model_that_forbids_extra_fields_fails_on_them_under_raise() -> None:
    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: str

    with pytest.raises(SchemaMismatchError) as raised:
        _get(b'{"id": "x", "new": 1}').into(Strict)
    assert [(m.path, m.type) for m in raised.value.mismatches] == [("new", "extra_forbidden")]
    assert raised.value.unknown == ("new",)
    assert _get(b'{"id": "x", "new": 1}').into(Strict, drift="warn") == Strict(id="x")


def test_the_error_pickles_and_names_the_call() -> None:
    with pytest.raises(SchemaMismatchError) as raised:
        _get(b'{"id": 5}', session={"integration": "inv"}).into(Thing, route="GET /things")
    error = pickle.loads(pickle.dumps(raised.value))
    assert (error.integration, error.route, error.model, error.code) == (
        "inv",
        "GET /things",
        "Thing",
        "schema_mismatch",
    )
    assert error.mismatches == (Mismatch("id", "Input should be a valid string", "integer", "string_type"),)
    assert "integration=inv" in str(error) and "request_id=" in str(error)


def test_a_failing_drift_callback_does_not_change_the_outcome(caplog: pytest.LogCaptureFixture) -> None:
    def broken(drift: SchemaDrift) -> None:
        raise RuntimeError("callback bug")

    with responses.RequestsMock() as mock:
        mock.get(URL, json={"id": "x", "extra": 1})
        session = ResilientSession()
        session.events.on_schema_drift(broken)
        with caplog.at_level(logging.WARNING, logger="resilient_session"):
            assert session.get(URL).normalized.into(Thing) == Thing(id="x")  # type: ignore[attr-defined]
    assert any("callback" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


# -- what it reads -----------------------------------------------------------------------------------


def test_outside_a_session_the_policy_is_raise_and_nothing_names_an_integration() -> None:
    with responses.RequestsMock() as mock:
        mock.get(URL, json={"id": 3})
        response = requests.get(URL, timeout=5)
    with pytest.raises(SchemaMismatchError) as raised:
        normalize(response).into(Thing)
    assert raised.value.integration is None and raised.value.route == "GET /things"
    assert normalize(response).into(dict[str, int]) == {"id": 3}


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Box(TypedDict):
    name: str
    points: list[Point]


def test_dataclass_typeddict_and_lists_from_json_and_xml() -> None:
    from_json = _get(b'{"name": "b", "points": [{"x": 1, "y": 2}]}').into(Box)
    from_xml = _get(b"<box><name>b</name><points><x>1</x><y>2</y></points></box>", "application/xml").into(
        Box
    )
    assert from_json == from_xml == {"name": "b", "points": [Point(1, 2)]}
    assert _get(b"<ps><p><x>1</x><y>2</y></p><p><x>3</x><y>4</y></p></ps>", "text/xml").into(list[Point]) == [
        Point(1, 2),
        Point(3, 4),
    ]
    assert _get(b"[1, 2]").into(list[int]) == [1, 2]


class Node(BaseModel):
    name: str
    meta: dict[str, Any] = {}
    note: str | None = "unset"
    child: list[Node] = []


def test_xml_values_any_fields_recursion_nil_and_repeats() -> None:
    body = (
        b'<node xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><name>root</name>'
        b'<meta><a x="1">t</a><b/></meta><note xsi:nil="true"/>'
        b"<child><name>c1</name><note></note></child><child><name>c2</name><child><name>c3</name></child></child>"
        b"</node>"
    )
    node = _get(body, "application/xml").into(Node)
    assert node.meta == {"a": {"@x": "1", "#text": "t"}, "b": None}
    assert node.note is None  # xsi:nil
    assert node.child[0].note is None  # empty element, a field that accepts None
    assert [c.name for c in node.child] == ["c1", "c2"] and node.child[1].child[0].name == "c3"
    with pytest.raises(SchemaMismatchError) as raised:
        _get(b"<t><id>a</id><id>b</id></t>", "application/xml").into(Thing)
    assert [(m.path, m.received) for m in raised.value.mismatches] == [("id", "array")]


def test_xml_unknown_attributes_elements_and_text_are_reported() -> None:
    drifts: list[SchemaDrift] = []
    with responses.RequestsMock() as mock:
        body = b'<t version="2"><id extra="1">a</id><size>3</size><colour>red</colour>loose text</t>'
        mock.get(URL, body=body, content_type="application/xml")
        session = ResilientSession()
        session.events.on_schema_drift(drifts.append)
        assert session.get(URL).normalized.into(Thing) == Thing(id="a", size=3)  # type: ignore[attr-defined]
    assert [d.unknown for d in drifts] == [("#text", "@version", "colour", "id.@extra")]


def test_a_model_that_allows_extra_fields_keeps_them_from_xml() -> None:
    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")
        id: str

    value = _get(b'<t kind="k"><id>a</id><more>m</more></t>', "application/xml").into(Open)
    assert value.model_extra == {"more": "m", "@kind": "k"}


def test_json_details_charset_bom_lying_header_and_data_read_first() -> None:
    assert _get('{"id": "é"}'.encode("utf-16"), "application/json; charset=utf-16").into(Thing) == Thing(
        id="é"
    )
    assert _get(b'\xef\xbb\xbf{"id": "x"}').into(Thing) == Thing(id="x")
    assert _get('{"id": "é"}'.encode("utf-16")).into(Thing) == Thing(id="é")  # a BOM, no charset
    assert _get(b"<t><id>x</id></t>", "application/json").into(Thing) == Thing(id="x")
    view = _get(b'{"id": "x", "size": 2}')
    assert view.data == {"id": "x", "size": 2}
    assert view.into(Thing) == Thing(id="x", size=2)


def test_xml_namespaces_by_local_name_or_clark_key() -> None:
    class Pair(BaseModel):
        a: str
        b: str = Field(validation_alias=AliasChoices("b", "{urn:two}v"))
        v: str

    body = b'<p xmlns="urn:one" xmlns:t="urn:two"><a>1</a><t:v>two</t:v><v>one</v></p>'
    assert _get(body, "application/xml").into(Pair) == Pair(a="1", b="two", v="one")


def test_type_adapters_are_built_once_per_type() -> None:
    _get(b'{"id": "x"}').into(Thing)
    first = typed_module._targets[Thing]
    _get(b'{"id": "y"}').into(Thing)
    assert typed_module._targets[Thing] is first


@pytest.mark.parametrize(
    ("method", "url", "route"),
    [
        ("GET", "https://h/users/42/orders?page=2", "GET /users/{id}/orders"),
        ("POST", "https://h/v1/items/3f2b8c1e-aaaa-bbbb-cccc-1234567890ab", "POST /v1/items/{id}"),
        ("GET", "https://h/people/jane@example.com", "GET /people/{id}"),
        ("GET", "https://h/objects/abc123def4567890", "GET /objects/{id}"),
        ("GET", "https://h/", "GET /"),
        ("GET", "https://user:pw@h/v2/status", "GET /v2/status"),
    ],
)
def test_routes_name_paths_with_identifiers_as_id(method: str, url: str, route: str) -> None:
    assert route_of(method, url) == route
