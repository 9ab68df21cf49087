"""XML entities in attributes, against a loopback upstream, and the large-document conversion path."""

from __future__ import annotations

import gc

import pytest

from resilient_session import ResilientSession
from resilient_session.normalization.xml import element_to_dict, parse_xml
from tests.integration.upstream import Reply, Upstream

XML = {"Content-Type": "application/xml"}


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE a [<!ENTITY e "expanded">]><a b="&e;"/>',
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "expanded">]><a><c d="x&e;y">t</c></a>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY e "expanded">]><a b="&e;"/>'.encode(
            "utf-16"
        ),
        b"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE a [<!ENTITY e 'expanded'>]><a b='&e;'/>",
    ],
)
def test_internal_entity_in_an_attribute_is_refused(upstream: Upstream, body: bytes) -> None:
    url = upstream.script("/x", Reply(body=body, headers=XML))
    with ResilientSession() as session:
        normalized = session.get(url).normalized  # type: ignore[attr-defined]
    assert normalized.error is not None and normalized.error.code == "malformed_response"
    assert "entity" in normalized.error.message
    assert normalized.data is None
    assert "expanded" not in repr((normalized.data, normalized.error))


def test_declared_but_unused_entity_and_predefined_ones_still_parse(upstream: Upstream) -> None:
    body = b'<!DOCTYPE a [<!ENTITY e "expanded">]><a b="&amp;&lt;&#65;">&quot;</a>'
    url = upstream.script("/x", Reply(body=body, headers=XML))
    with ResilientSession() as session:
        normalized = session.get(url).normalized  # type: ignore[attr-defined]
    assert (normalized.error, normalized.data) == (None, {"a": {"@b": "&<A", "#text": '"'}})


def catalogue(items: int) -> bytes:
    body = "".join(
        f'<item id="{i}"><name>n{i}</name><price currency="EUR">{i}</price><t>a</t><t>b</t> tail{i}</item>'
        for i in range(items)
    )
    return f'<catalog xmlns="urn:x">{body}<empty/></catalog>'.encode()


@pytest.mark.parametrize("enabled", [True, False])
def test_large_conversion_gives_the_same_dict_and_leaves_the_collector_as_it_was(enabled: bool) -> None:
    root = parse_xml(catalogue(3000))
    small_path = element_to_dict(root, large=False)
    was = gc.isenabled()
    try:
        if not enabled:
            gc.disable()
        assert element_to_dict(root, large=True) == small_path
        assert element_to_dict(root) == small_path  # 3000 children: large by default
        assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()
    assert small_path["catalog"]["item"][7] == {
        "@id": "7",
        "name": "n7",
        "price": {"@currency": "EUR", "#text": "7"},
        "t": ["a", "b"],
        "#text": "tail7",
    }
    assert small_path["catalog"]["empty"] is None


def test_large_body_through_a_session_is_converted(upstream: Upstream) -> None:
    body = catalogue(20_000)
    assert len(body) > 1_000_000
    url = upstream.script("/big", Reply(body=body, headers=XML))
    with ResilientSession() as session:
        normalized = session.get(url).normalized  # type: ignore[attr-defined]
    assert normalized.error is None
    assert len(normalized.data["catalog"]["item"]) == 20_000
    assert gc.isenabled()
