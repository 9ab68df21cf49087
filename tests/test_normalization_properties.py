"""Property tests: any bytes with any content type give a NormalizedResponse, and reading it never raises."""

from __future__ import annotations

import json
from datetime import timedelta
from xml.sax.saxutils import escape, quoteattr

import requests
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from resilient_session import MalformedResponseError, normalize
from resilient_session.normalization import NormalizedError, Normalizer
from resilient_session.normalization.xml import element_to_dict, parse_xml

CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/problem+json",
            "application/json; charset=latin-1",
            "application/json; charset=bogus",
            "application/xml",
            "text/xml; charset=utf-16",
            "application/soap+xml",
            "text/html",
            "text/plain",
            "text/plain; charset=ascii",
            "text/csv",
            "application/octet-stream",
            "image/png",
            "",
            ";;;",
            "application/",
        ]
    ),
    st.text(max_size=40),
)

# Bodies biased towards the interesting shapes: JSON-ish, XML-ish, HTML-ish and raw bytes.
BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=10,
    ).map(lambda value: json.dumps(value).encode()),
    st.tuples(
        st.sampled_from([b"<a>", b"<?xml version='1.0'?><r x='1'>", b"<html><title>", b"{", b"["]),
        st.binary(max_size=100),
    ).map(b"".join),
)

STATUSES = st.one_of(
    st.sampled_from([200, 201, 204, 301, 304, 400, 401, 404, 429, 500, 502, 503]), st.integers(100, 599)
)


def response_for(
    body: bytes, content_type: str | None, status: int, method: str = "GET"
) -> requests.Response:
    response = requests.Response()
    response._content = body
    response.status_code = status
    response.headers = CaseInsensitiveDict({} if content_type is None else {"Content-Type": content_type})
    response.url = "https://api.example.com/x"
    response.elapsed = timedelta(0)
    response.request = requests.Request(method, response.url).prepare()
    return response


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=BODIES, content_type=CONTENT_TYPES, status=STATUSES, method=st.sampled_from(["GET", "HEAD", "POST"])
)
def test_any_bytes_any_content_type_never_raise(
    body: bytes, content_type: str | None, status: int, method: str
) -> None:
    n = normalize(response_for(body, content_type, status, method), Normalizer(max_body_size=250))
    assert n.format in ("json", "xml", "text", "empty", "binary")
    assert n.ok is (n.error is None)
    if status >= 400:
        assert n.error is not None and isinstance(n.error, NormalizedError)
    if n.error is not None:
        assert isinstance(n.error.code, str) and n.error.code
        assert isinstance(n.error.message, str)
        assert isinstance(n.error.retryable, bool)
    # The cheap fields and the repr never raise either, and read the response as built.
    assert (n.status, n.method, n.url, n.request_id, n.attempts, n.elapsed) == (
        status,
        method,
        "https://api.example.com/x",
        None,
        1,
        0.0,
    )
    assert n.content_type is None or n.content_type == n.content_type.lower()
    assert repr(n)
    # raise_for_error raises only typed errors.
    try:
        n.raise_for_error()
    except requests.HTTPError:
        assert status >= 400
    except MalformedResponseError as exc:
        assert status < 400 and exc.code == n.error.code  # type: ignore[union-attr]
    else:
        assert n.error is None


@settings(max_examples=200, deadline=None)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.integers()
        | st.text(),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
        max_leaves=20,
    ),
    content_type=st.sampled_from(["application/json", "text/plain", None, "application/vnd.x+json"]),
)
def test_json_round_trips(value: object, content_type: str | None) -> None:
    # Finite numbers only: json.dumps writes inf as Infinity, which is not JSON and is refused.
    body = json.dumps(value).encode()
    n = normalize(response_for(body, content_type, 200))
    if content_type in ("application/json", "application/vnd.x+json") or isinstance(value, (dict, list)):
        assert (n.format, n.data) == ("json", value)


@given(value=st.sampled_from([float("inf"), float("-inf"), float("nan")]))
def test_non_finite_numbers_are_malformed_json(value: float) -> None:
    n = normalize(response_for(json.dumps({"v": value}).encode(), "application/json", 200))
    assert (n.format, n.data) == ("json", None)
    assert n.error is not None and n.error.code == "malformed_response"


NAMES = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,5}\Z")
TEXTS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=10)


@st.composite
def xml_elements(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(NAMES)
    attributes = draw(st.dictionaries(NAMES, TEXTS, max_size=2))
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in attributes.items())
    children = draw(st.lists(xml_elements(depth + 1), max_size=3)) if depth < 3 else []
    text = escape(draw(TEXTS))
    return f"<{name}{attrs}>{text}{''.join(children)}</{name}>"


@settings(max_examples=200, deadline=None)
@given(document=xml_elements())
def test_xml_converter_never_raises_on_well_formed_documents(document: str) -> None:
    data = element_to_dict(parse_xml(document.encode()))
    assert len(data) == 1


@settings(max_examples=200, deadline=None)
@given(document=xml_elements())
def test_xml_converter_agrees_with_xmltodict(document: str) -> None:
    assert element_to_dict(parse_xml(document.encode())) == xmltodict.parse(document)
