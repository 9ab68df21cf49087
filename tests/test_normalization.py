"""Response normalization: formats, error envelopes, malformed bodies, hardening, laziness, wiring."""

from __future__ import annotations

import gc
import gzip
import json
import pickle
import weakref
from datetime import timedelta
from typing import Any

import pytest
import requests
import responses
import xmltodict
from requests.structures import CaseInsensitiveDict

import resilient_session.normalization.sniff as sniff_module
import resilient_session.normalization.view as normalize_module
from resilient_session import (
    AuthenticationError,
    ClientError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    ResilientAdapter,
    ResilientSession,
    ServerError,
    normalize,
)
from resilient_session.normalization import NormalizedError, NormalizedResponse, Normalizer, with_normalized
from resilient_session.normalization import xml as _xml
from resilient_session.normalization.xml import element_to_dict, parse_xml

URL = "https://api.example.com/v1/items?page=2"


def make(
    body: bytes | None,
    content_type: str | None = "application/json",
    status: int = 200,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    url: str = URL,
    request_headers: dict[str, str] | None = None,
) -> requests.Response:
    """A requests.Response as HTTPAdapter would build it, body already read."""
    response = requests.Response()
    response._content = body
    response.status_code = status
    response.reason = "Reason"
    all_headers = CaseInsensitiveDict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    response.headers = all_headers
    response.url = url
    response.elapsed = timedelta(milliseconds=250)
    response.request = requests.Request(method, url, headers=request_headers).prepare()
    return response


def norm(*args: Any, **kwargs: Any) -> NormalizedResponse:
    return normalize(make(*args, **kwargs))


# -- formats -------------------------------------------------------------------------------------


class TestFormats:
    def test_json(self) -> None:
        n = norm(b'{"items": [1, 2], "next": null}')
        assert (n.format, n.data, n.error, n.ok) == ("json", {"items": [1, 2], "next": None}, None, True)

    @pytest.mark.parametrize(
        "content_type",
        ["application/vnd.api+json", "application/hal+json; charset=UTF-8", "text/json", "Application/JSON"],
    )
    def test_json_media_types(self, content_type: str) -> None:
        assert norm(b"[1]", content_type).format == "json"

    def test_json_with_utf16_body_is_detected(self) -> None:
        n = norm('{"name": "Zoë"}'.encode("utf-16"), "application/json")
        assert n.data == {"name": "Zoë"}

    def test_json_with_declared_non_utf_charset(self) -> None:
        n = norm('{"name": "Zoë"}'.encode("latin-1"), "application/json; charset=ISO-8859-1")
        assert n.data == {"name": "Zoë"}

    def test_json_scalar(self) -> None:
        assert norm(b"42").data == 42

    def test_xml(self) -> None:
        n = norm(
            b'<?xml version="1.0"?><user id="7"><name>Ann</name><role>a</role><role>b</role></user>',
            "text/xml",
        )
        assert n.format == "xml"
        assert n.data == {"user": {"@id": "7", "name": "Ann", "role": ["a", "b"]}}

    @pytest.mark.parametrize("content_type", ["application/atom+xml", "application/soap+xml; charset=utf-8"])
    def test_xml_media_types(self, content_type: str) -> None:
        assert norm(b"<feed/>", content_type).data == {"feed": None}

    def test_xml_charset_header_wins_over_declaration(self) -> None:
        body = '<?xml version="1.0" encoding="UTF-8"?><a>Zoë</a>'.encode("latin-1")
        assert norm(body, "application/xml; charset=iso-8859-1").data == {"a": "Zoë"}

    def test_text(self) -> None:
        n = norm(b"plain words", "text/csv")
        assert (n.format, n.data) == ("text", "plain words")

    def test_html_is_text(self) -> None:
        n = norm(b"<html><title>Hi</title></html>", "text/html; charset=utf-8")
        assert (n.format, n.data, n.error) == ("text", "<html><title>Hi</title></html>", None)

    def test_binary(self) -> None:
        png = b"\x89PNG\r\n\x1a\n\x00\x00"
        n = norm(png, "image/png")
        assert (n.format, n.data, n.ok) == ("binary", png, True)

    @pytest.mark.parametrize("body", [b"", None])
    def test_empty(self, body: bytes | None) -> None:
        n = norm(body)
        assert (n.format, n.data, n.error) == ("empty", None, None)

    def test_204_and_head_are_empty_whatever_the_header_says(self) -> None:
        assert norm(b"", "application/json", 204).format == "empty"
        assert norm(b"", "application/json", method="HEAD").format == "empty"


class TestSniffing:
    def test_missing_content_type_json(self) -> None:
        assert norm(b' \n{"a": 1}', None).data == {"a": 1}

    def test_missing_content_type_xml(self) -> None:
        assert norm(b"<a>1</a>", None).data == {"a": "1"}

    def test_missing_content_type_text_and_binary(self) -> None:
        assert (norm(b"hello", None).format, norm(b"\xff\x00\xfe", None).format) == ("text", "binary")

    def test_text_plain_holding_json(self) -> None:
        n = norm(b'{"a": 1}', "text/plain; charset=utf-8")
        assert (n.format, n.data) == ("json", {"a": 1})

    def test_octet_stream_holding_json(self) -> None:
        assert norm(b'[{"a": 1}]', "application/octet-stream").format == "json"

    def test_text_plain_that_only_looks_like_json_stays_text(self) -> None:
        n = norm(b"{not json", "text/plain")
        assert (n.format, n.data, n.error) == ("text", "{not json", None)

    def test_json_header_holding_xml(self) -> None:
        n = norm(b"<a><b>1</b></a>", "application/json")
        assert (n.format, n.data, n.error) == ("xml", {"a": {"b": "1"}}, None)

    def test_xml_header_holding_json(self) -> None:
        assert norm(b'{"a": 1}', "application/xml").format == "json"

    def test_json_header_holding_html_error_page(self) -> None:
        page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        n = norm(page, "application/json", 502)
        assert n.format == "text"
        assert n.data == page.decode()
        assert n.error == NormalizedError("http_502", "502 Bad Gateway", {}, True)

    def test_json_header_holding_html_on_success_is_malformed(self) -> None:
        n = norm(b"<html><head><title>Sign in</title></head></html>", "application/json", 200)
        assert (n.format, n.data) == ("json", None)
        assert n.error is not None and n.error.code == "malformed_response"
        assert "HTML page (Sign in)" in n.error.message

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b'{"name": "ab', "Unterminated string starting at line 1 column 10"),
            (b'{"id": 1} x', "Extra data at line 1 column 11"),
            (b"[1,", "Expecting value at line 1 column 4"),
        ],
    )
    def test_malformed_json_reason_reads_as_a_sentence(self, body: bytes, reason: str) -> None:
        n = norm(body, "application/json", 200)
        assert n.error is not None and n.error.message.endswith(reason)
        assert "at at" not in n.error.message

    def test_json_header_holding_plain_text_error(self) -> None:
        n = norm(b"upstream connect error\n", "application/json", 503)
        assert (n.format, n.data) == ("text", "upstream connect error\n")
        assert n.error is not None and n.error.message == "upstream connect error"


# -- error envelopes -------------------------------------------------------------------------------


def error_of(body: bytes, content_type: str = "application/json", status: int = 400) -> NormalizedError:
    n = norm(body, content_type, status)
    assert n.error is not None and not n.ok
    return n.error


class TestJSONEnvelopes:
    def test_problem_json(self) -> None:
        body = {
            "type": "https://example.com/probs/out-of-credit",
            "title": "You do not have enough credit.",
            "status": 403,
            "detail": "Your current balance is 30, but that costs 50.",
            "instance": "/account/12345/msgs/abc",
        }
        error = error_of(json.dumps(body).encode(), "application/problem+json", 403)
        assert error.code == "https://example.com/probs/out-of-credit"
        assert error.message == "Your current balance is 30, but that costs 50."
        assert error.details == body
        assert error.retryable is False

    def test_problem_json_about_blank_falls_back_to_status_code(self) -> None:
        error = error_of(
            b'{"type": "about:blank", "title": "Not Found", "status": 404}', "application/problem+json", 404
        )
        assert (error.code, error.message) == ("http_404", "Not Found")

    def test_error_string_oauth_style(self) -> None:
        error = error_of(b'{"error": "invalid_grant", "error_description": "Code expired"}')
        assert (error.code, error.message) == ("invalid_grant", "Code expired")

    def test_error_string_sentence(self) -> None:
        error = error_of(b'{"error": "Something went badly wrong"}', status=500)
        assert (error.code, error.message, error.retryable) == (
            "http_500",
            "Something went badly wrong",
            False,
        )

    def test_error_object(self) -> None:
        body = (
            b'{"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}'
        )
        error = error_of(body, status=404)
        assert (error.code, error.message) == ("NOT_FOUND", "Requested entity was not found.")
        assert error.details["code"] == 404

    def test_error_object_stripe_style(self) -> None:
        body = json.dumps(
            {"error": {"type": "card_error", "code": "card_declined", "message": "Declined."}}
        ).encode()
        assert error_of(body, status=402).code == "card_declined"

    def test_errors_list(self) -> None:
        errors = [{"message": "Field x missing", "extensions": {"code": "BAD_INPUT"}}, {"message": "y"}]
        body = json.dumps({"errors": errors}).encode()
        error = error_of(body, status=422)
        assert (error.code, error.message) == ("BAD_INPUT", "Field x missing (and 1 more)")
        assert len(error.details["errors"]) == 2

    def test_errors_list_of_strings(self) -> None:
        assert error_of(b'{"errors": ["name is required"]}').message == "name is required"

    def test_message(self) -> None:
        body = b'{"message": "Not Found", "documentation_url": "https://docs.example.com"}'
        error = error_of(body, status=404)
        assert (error.code, error.message) == ("http_404", "Not Found")
        assert error.details["documentation_url"] == "https://docs.example.com"

    def test_detail(self) -> None:
        assert error_of(
            b'{"detail": "Authentication credentials were not provided."}', status=401
        ).message == ("Authentication credentials were not provided.")

    def test_envelope_retryable_hint_wins(self) -> None:
        assert (
            error_of(b'{"error": {"message": "try later", "retryable": true}}', status=409).retryable is True
        )

    def test_unrecognised_body_uses_reason(self) -> None:
        error = error_of(b'{"weird": 1}', status=503)
        assert (error.code, error.message, error.retryable, error.details) == ("http_503", "Reason", True, {})

    def test_envelope_on_success_is_data_not_error(self) -> None:
        n = norm(b'{"error": "nope", "ok": false}', status=200)
        assert (n.error, n.ok, n.data["ok"]) == (None, True, False)

    def test_message_is_redacted_and_truncated(self) -> None:
        token = "s3cr3t-token-value"
        body = json.dumps({"message": f"token {token} is invalid " + "x" * 1000}).encode()
        n = normalize(make(body, status=401, request_headers={"Authorization": f"Bearer {token}"}))
        assert n.error is not None
        assert token not in n.error.message and "***" in n.error.message
        assert len(n.error.message) <= 300


S3_ERROR = b"""<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>"""

SOAP11_FAULT = b"""<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <soap:Fault>
      <faultcode>soap:Client</faultcode>
      <faultstring>Invalid account number</faultstring>
      <detail><err:code xmlns:err="urn:bank">E42</err:code></detail>
    </soap:Fault>
  </soap:Body>
</soap:Envelope>"""

SOAP12_FAULT = b"""<?xml version="1.0"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:m="urn:bank">
  <env:Body>
    <env:Fault>
      <env:Code>
        <env:Value>env:Sender</env:Value>
        <env:Subcode><env:Value>m:InvalidAccount</env:Value></env:Subcode>
      </env:Code>
      <env:Reason><env:Text xml:lang="en">Invalid account number</env:Text></env:Reason>
      <env:Detail><m:code>E42</m:code></env:Detail>
    </env:Fault>
  </env:Body>
</env:Envelope>"""


class TestXMLEnvelopes:
    def test_s3_error(self) -> None:
        error = error_of(S3_ERROR, "application/xml", 404)
        assert (error.code, error.message) == ("NoSuchKey", "The resource you requested does not exist")
        assert error.details["Error"]["RequestId"] == "4442587FB7D0A2F9"

    def test_aws_query_error_response(self) -> None:
        body = (
            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
            b"<Message>Rate exceeded</Message></Error></ErrorResponse>"
        )
        error = error_of(body, "text/xml", 400)
        assert (error.code, error.message) == ("Throttling", "Rate exceeded")

    def test_generic_error_element(self) -> None:
        assert error_of(b"<error>quota exceeded</error>", "application/xml", 429).message == "quota exceeded"

    def test_errors_wrapper(self) -> None:
        error = error_of(
            b"<errors><error><code>bad</code><message>Bad id</message></error></errors>", "text/xml"
        )
        assert (error.code, error.message) == ("bad", "Bad id")

    def test_soap11_fault(self) -> None:
        error = error_of(SOAP11_FAULT, "text/xml; charset=utf-8", 500)
        assert (error.code, error.message) == ("soap:Client", "Invalid account number")
        assert error.details["Fault"]["detail"] == {"code": "E42"}

    def test_soap12_fault(self) -> None:
        error = error_of(SOAP12_FAULT, "application/soap+xml", 500)
        assert (error.code, error.message) == ("m:InvalidAccount", "Invalid account number")
        assert error.details["Fault"]["Reason"]["Text"] == {"@lang": "en", "#text": "Invalid account number"}

    def test_html_error_page_title(self) -> None:
        page = b"<html><head>\n<title>\n  503 Service &amp; Temporarily Unavailable\n</title></head></html>"
        error = error_of(page, "text/html", 503)
        assert (error.code, error.message, error.retryable) == (
            "http_503",
            "503 Service & Temporarily Unavailable",
            True,
        )

    def test_xml_without_envelope(self) -> None:
        assert error_of(b"<status>down</status>", "application/xml", 500).message == "Reason"


# -- malformed bodies ------------------------------------------------------------------------------


class TestMalformed:
    @pytest.mark.parametrize(
        ("body", "content_type", "expected"),
        [
            (b'{"items": [1, 2', "application/json", "json"),
            (b'{"name": "\xff\xfe"}', "application/json", "json"),
            (b"[" * 100_000, "application/json", "json"),
            (b'{"n": ' + b"9" * 5000 + b"}", "application/json", "json"),
            (b"<a><b></a>", "application/xml", "xml"),
            (b"<a>\xff</a>", "text/xml", "xml"),
            (b"not xml at all", "application/xml", "xml"),
            (b"<a>" * 300 + b"</a>" * 300, "application/xml", "xml"),
            (b"caf\xe9", "text/plain; charset=utf-8", "text"),
            (b"ok", "text/plain; charset=no-such-charset", "text"),
        ],
    )
    def test_never_raises_and_says_what_was_expected(
        self, body: bytes, content_type: str, expected: str
    ) -> None:
        n = norm(body, content_type)
        assert n.format == expected
        assert n.data is None
        assert n.error is not None and n.error.code == "malformed_response"
        assert n.error.details == {"expected": expected}
        assert n.ok is False

    def test_raise_for_error_raises_malformed(self) -> None:
        n = norm(b'{"a": ', "application/json")
        with pytest.raises(MalformedResponseError) as info:
            n.raise_for_error()
        assert info.value.code == "malformed_response"
        assert info.value.response is n._response
        assert isinstance(info.value, ValueError) and isinstance(info.value, requests.RequestException)

    def test_malformed_error_pickles_with_its_code(self) -> None:
        with pytest.raises(MalformedResponseError) as info:
            norm(b"[1,", "application/json").raise_for_error()
        copy = pickle.loads(pickle.dumps(info.value))
        assert (copy.code, copy.details, str(copy)) == (info.value.code, info.value.details, str(info.value))

    def test_malformed_body_on_error_status_keeps_the_status_error(self) -> None:
        n = norm(b'{"error": {"message": "trunc', "application/json", 500)
        assert n.error is not None and n.error.code == "http_500"
        assert n.error.details["body_error"]["code"] == "malformed_response"
        with pytest.raises(ServerError):
            n.raise_for_error()

    def test_body_that_breaks_off_mid_read_is_malformed_and_retryable(self) -> None:
        class BrokenRaw:
            def stream(self, *args: Any, **kwargs: Any) -> Any:
                yield b'{"items": [1,'
                raise requests.exceptions.ChunkedEncodingError("connection broken")

        response = make(None)
        response._content = False  # type: ignore[assignment]
        response.raw = BrokenRaw()
        n = normalize(response)
        assert (n.format, n.data) == ("json", None)
        assert n.error is not None and n.error.code == "malformed_response"
        assert n.error.details == {"expected": "json", "reason": "incomplete"} and n.error.retryable
        with pytest.raises(MalformedResponseError):
            n.raise_for_error()

    def test_unreadable_stream(self) -> None:
        response = make(None)
        response._content = False  # type: ignore[assignment]
        response._content_consumed = True  # type: ignore[attr-defined]  # as after iter_content
        n = normalize(response)
        assert n.error is not None and n.error.code == "body_unavailable"
        with pytest.raises(MalformedResponseError):
            n.raise_for_error()


class TestHardenedXML:
    def test_external_entity_is_rejected(self, tmp_path: Any) -> None:
        secret = tmp_path / "secret.txt"
        secret.write_text("TOP-SECRET-CONTENT")
        body = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'.encode()
        n = norm(body, "application/xml")
        assert n.error is not None and n.error.code == "malformed_response"
        assert "entity" in n.error.message
        assert "TOP-SECRET" not in repr((n.data, n.error))

    def test_external_parameter_entity_is_not_loaded(
        self, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The parser must not even ask for it; the deny-all resolver is only the second line of defence.
        asked: list[str] = []
        original = _xml._DenyExternal.resolve

        def spy(self: Any, url: str, public_id: str, context: Any) -> Any:
            asked.append(url)
            return original(self, url, public_id, context)

        monkeypatch.setattr(_xml._DenyExternal, "resolve", spy)
        dtd = tmp_path / "evil.dtd"
        dtd.write_text("TOP-SECRET-CONTENT, not a DTD")
        body = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file://{dtd}"> %p;]><r>x</r>'.encode()
        n = norm(body, "application/xml")
        assert (n.data, n.error) == ({"r": "x"}, None)
        assert asked == []

    def test_external_dtd_is_not_loaded(self) -> None:
        body = b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///dev/zero"><r>x</r>'
        assert norm(body, "application/xml").data == {"r": "x"}

    def test_internal_entities_are_rejected_not_expanded(self) -> None:
        body = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "expanded">]><r>&e;</r>'
        n = norm(body, "application/xml")
        assert n.error is not None and n.error.code == "malformed_response"

    def test_billion_laughs(self) -> None:
        levels = "".join(
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' if i else '<!ENTITY lol0 "lol">' for i in range(10)
        )
        body = f'<?xml version="1.0"?><!DOCTYPE lolz [{levels}]><lolz a="&lol9;">&lol9;</lolz>'.encode()
        n = norm(body, "application/xml")
        assert n.error is not None and n.error.code == "malformed_response"
        assert n.data is None

    def test_quadratic_blowup(self) -> None:
        body = (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "'
            + b"x" * 50_000
            + b'">]><r b="'
            + b"&a;" * 50_000
            + b'"/>'
        )
        n = norm(body, "application/xml")
        assert n.error is not None and n.error.code == "malformed_response"


class TestSizeLimit:
    def test_body_over_limit_is_not_parsed(self) -> None:
        n = Normalizer(max_body_size=10)(make(b'{"a": "0123456789"}'))
        assert (n.format, n.data) == ("json", None)
        assert n.error is not None and n.error.code == "body_too_large"
        assert n.error.details == {"size": 19, "limit": 10}
        with pytest.raises(MalformedResponseError, match="over the 10-byte limit"):
            n.raise_for_error()

    def test_declared_length_over_limit_is_not_read(self) -> None:
        response = make(None, headers={"Content-Length": str(20 * 1024 * 1024)})
        response._content = False  # type: ignore[assignment]

        class Exploding:
            def read(self, *args: Any, **kwargs: Any) -> bytes:
                raise AssertionError("the body must not be read")

            def stream(self, *args: Any, **kwargs: Any) -> Any:
                raise AssertionError("the body must not be read")

        response.raw = Exploding()
        n = normalize(response)
        assert n.error is not None and n.error.code == "body_too_large"

    def test_default_limit_is_10_mib(self) -> None:
        assert Normalizer().max_body_size == 10 * 1024 * 1024

    def test_normalizer_is_immutable_with_new(self) -> None:
        base = Normalizer()
        changed = base.new(max_body_size=5)
        assert (base.max_body_size, changed.max_body_size) == (10 * 1024 * 1024, 5)
        with pytest.raises(AttributeError):
            base.max_body_size = 1  # type: ignore[misc]
        with pytest.raises(ValueError):
            Normalizer(xml_namespaces="prefix")  # type: ignore[arg-type]


# -- schema fields -----------------------------------------------------------------------------------


class TestFields:
    def test_cheap_fields(self) -> None:
        response = make(
            b"{}",
            "Application/JSON; charset=UTF-8",
            201,
            method="POST",
            url="https://user:pw@api.example.com/x?api_key=abc&q=1",
            headers={"X-Amzn-RequestId": "req-1"},
        )
        response.attempts = 3  # type: ignore[attr-defined]
        n = normalize(response)
        assert n.status == 201
        assert n.method == "POST"
        assert n.url == "https://user:***@api.example.com/x?api_key=***&q=1"
        assert n.elapsed == 0.25
        assert n.attempts == 3
        assert n.request_id == "req-1"
        assert n.content_type == "application/json"
        assert n.headers["x-amzn-requestid"] == "req-1"

    def test_defaults_for_a_bare_response(self) -> None:
        response = requests.Response()
        response.status_code = 200
        n = normalize(response)
        assert (n.method, n.attempts, n.request_id, n.content_type, n.format) == (
            None,
            1,
            None,
            None,
            "empty",
        )

    @pytest.mark.parametrize("header", ["X-Request-ID", "x-request-id", "X-Correlation-ID", "Request-Id"])
    def test_request_id_headers(self, header: str) -> None:
        assert norm(b"{}", headers={header: "abc"}).request_id == "abc"

    def test_traceparent_is_not_a_request_id(self) -> None:
        assert (
            norm(
                b"{}", headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
            ).request_id
            is None
        )

    def test_repr_is_parse_free_and_redacted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        n = normalize(make(b"{}", url="https://api.example.com/x?token=abc123"))
        monkeypatch.setattr(normalize_module._Body, "parse", lambda self: pytest.fail("repr parsed the body"))
        assert repr(n) == "<NormalizedResponse GET https://api.example.com/x?token=*** [200]>"

    def test_raise_for_error_returns_self_when_fine(self) -> None:
        n = norm(b'{"a": 1}')
        assert n.raise_for_error().data == {"a": 1}

    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, ClientError),
            (401, AuthenticationError),
            (404, NotFoundError),
            (429, RateLimitedError),
            (502, ServerError),
        ],
    )
    def test_raise_for_error_status_classes(self, status: int, cls: type[Exception]) -> None:
        n = norm(b'{"message": "explained"}', status=status, headers={"Retry-After": "7"})
        with pytest.raises(cls, match="explained") as info:
            n.raise_for_error()
        assert info.value.normalized_error == n.error  # type: ignore[attr-defined]
        if status == 429:
            assert info.value.retry_after == 7.0  # type: ignore[attr-defined]


class TestLaziness:
    def test_nothing_parsed_until_read_then_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[bytes] = []
        real_loads = json.loads

        def counting_loads(content: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(content)
            return real_loads(content, *args, **kwargs)

        monkeypatch.setattr(sniff_module.json, "loads", counting_loads)  # type: ignore[attr-defined]
        n = norm(b'{"a": 1}')
        assert (n.status, n.url, n.request_id, n.content_type, n.attempts) == (
            200,
            URL,
            None,
            "application/json",
            1,
        )
        assert calls == []
        assert n.data == {"a": 1} and n.format == "json" and n.ok and n.error is None
        assert len(calls) == 1

    def test_streamed_body_is_not_read_until_needed(self) -> None:
        response = make(None)
        response._content = False  # type: ignore[assignment]
        reads: list[int] = []

        class Raw:
            def stream(self, chunk_size: int, decode_content: bool = True) -> Any:
                reads.append(chunk_size)
                yield b'{"a": 1}'

        response.raw = Raw()
        n = normalize(response)
        assert n.status == 200 and reads == []
        assert n.data == {"a": 1} and len(reads) == 1
        assert response.content == b'{"a": 1}'  # the user's own read still works


# -- the XML dict convention ---------------------------------------------------------------------------


class TestXMLConvention:
    DOC = b"""<?xml version="1.0"?>
<root xmlns="urn:default" xmlns:x="urn:x" x:version="2">
  <item id="1">first</item>
  <item id="2"><name>second</name></item>
  <x:extra>e</x:extra>
  <empty/>
  <mixed>before <b>bold</b> after</mixed>
  <!-- comments are dropped -->
  <?pi dropped?>
  <cdata><![CDATA[<raw> & text]]></cdata>
</root>"""

    def test_strip_namespaces(self) -> None:
        assert element_to_dict(parse_xml(self.DOC)) == {
            "root": {
                "@version": "2",
                "item": [{"@id": "1", "#text": "first"}, {"@id": "2", "name": "second"}],
                "extra": "e",
                "empty": None,
                "mixed": {"b": "bold", "#text": "before  after"},
                "cdata": "<raw> & text",
            }
        }

    def test_clark_namespaces(self) -> None:
        data = element_to_dict(parse_xml(self.DOC), "clark")["{urn:default}root"]
        assert data["@{urn:x}version"] == "2"
        assert data["{urn:x}extra"] == "e"
        assert len(data["{urn:default}item"]) == 2

    def test_normalizer_namespace_option(self) -> None:
        n = Normalizer(xml_namespaces="clark")(make(b'<a xmlns="urn:a"><b>1</b></a>', "application/xml"))
        assert n.data == {"{urn:a}a": {"{urn:a}b": "1"}}

    @pytest.mark.parametrize(
        "doc",
        [
            b"<a><b>1</b><b>2</b><c x='1'>t</c><d/><e> spaced </e></a>",
            b"<list><i>1</i><i><j>2</j><j>3</j></i><i k='v'/></list>",
            b"<r>solo</r>",
            b"<r a='1'/>",
        ],
    )
    def test_matches_xmltodict_without_namespaces(self, doc: bytes) -> None:
        assert element_to_dict(parse_xml(doc)) == xmltodict.parse(doc)


# -- wiring into the session ---------------------------------------------------------------------------


class TestSessionWiring:
    @responses.activate
    def test_every_response_has_normalized_and_hooks_stay_the_users(self) -> None:
        responses.get("https://api.example.com/x", json={"a": 1})
        session = ResilientSession()
        seen: list[requests.Response] = []
        session.hooks["response"].append(lambda r, *a, **k: seen.append(r))
        assert len(session.hooks["response"]) == 1
        response = session.get("https://api.example.com/x")
        assert isinstance(response.normalized, NormalizedResponse)  # type: ignore[attr-defined]
        assert response.normalized.data == {"a": 1}  # type: ignore[attr-defined]
        assert seen == [response]
        assert len(session.hooks["response"]) == 1

    @responses.activate
    def test_replacing_session_hooks_keeps_normalized(self) -> None:
        responses.get("https://api.example.com/x", body="<a>1</a>", content_type="text/xml")
        session = ResilientSession()
        session.hooks = {"response": []}
        assert session.get("https://api.example.com/x").normalized.data == {"a": "1"}  # type: ignore[attr-defined]

    @responses.activate
    def test_redirect_hops_are_normalized(self) -> None:
        responses.get(
            "https://api.example.com/old", status=301, headers={"Location": "https://api.example.com/new"}
        )
        responses.get("https://api.example.com/new", json=[1])
        response = ResilientSession().get("https://api.example.com/old")
        assert response.normalized.data == [1]  # type: ignore[attr-defined]
        hop = response.history[0]
        assert (hop.normalized.status, hop.normalized.ok) == (301, True)  # type: ignore[attr-defined]

    @responses.activate
    def test_attempts_come_from_the_adapter(self) -> None:
        responses.get("https://api.example.com/x", json={"error": "busy"}, status=503)
        response = ResilientSession(retry=False).get("https://api.example.com/x")
        n = response.normalized  # type: ignore[attr-defined]
        assert n.attempts == getattr(response, "attempts", None) == 1
        assert n.error is not None and n.error.retryable

    @responses.activate
    def test_gzip_body(self) -> None:
        responses.get(
            "https://api.example.com/x",
            body=gzip.compress(b'{"a": 1}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert ResilientSession().get("https://api.example.com/x").normalized.data == {"a": 1}  # type: ignore[attr-defined]

    @responses.activate
    def test_plain_adapter_mounted_by_the_user_still_gets_normalized(self) -> None:
        responses.get(
            "https://api.example.com/old", status=302, headers={"Location": "https://api.example.com/new"}
        )
        responses.get("https://api.example.com/new", json={"a": 1})
        session = ResilientSession()
        session.mount("https://api.example.com/", requests.adapters.HTTPAdapter())
        seen: list[requests.Response] = []
        session.hooks["response"].append(lambda r, *a, **k: seen.append(r))
        response = session.get("https://api.example.com/old")
        assert response.normalized.data == {"a": 1}  # type: ignore[attr-defined]
        assert response.history[0].normalized.status == 302  # type: ignore[attr-defined]
        assert seen == [*response.history, response]  # the very objects the user's hooks saw

    def test_per_adapter_normalizer(self) -> None:
        adapter = ResilientAdapter()
        adapter.normalizer = Normalizer(max_body_size=1)
        session = ResilientSession()
        session.mount("https://tiny.example.com/", adapter)
        with responses.RequestsMock() as mock:
            mock.get("https://tiny.example.com/x", json={"a": 1})
            n = session.get("https://tiny.example.com/x").normalized  # type: ignore[attr-defined]
        assert n.error is not None and n.error.code == "body_too_large"

    def test_unread_attachment_creates_no_reference_cycle(self) -> None:
        response = with_normalized(requests.Response())
        ref = weakref.ref(response)
        gc.disable()
        try:
            del response
            assert ref() is None  # freed by reference counting alone
        finally:
            gc.enable()

    def test_attached_response_is_still_a_response(self) -> None:
        original = make(b'{"a": 1}')
        response = with_normalized(original, Normalizer(max_body_size=5))
        assert isinstance(response, requests.Response)
        assert vars(original).items() <= vars(response).items()
        assert (response.status_code, response.headers, response.request) == (
            200,
            original.headers,
            original.request,
        )
        assert response.normalized is response.normalized  # type: ignore[attr-defined]
        assert response.normalized.error.code == "body_too_large"  # type: ignore[attr-defined]
        copy = pickle.loads(pickle.dumps(response))
        assert copy.json() == {"a": 1}
        assert copy.normalized.data == {"a": 1}  # the default normalizer after unpickling

    def test_foreign_response_subclass_gets_an_eager_view(self) -> None:
        class Custom(requests.Response):
            pass

        custom = Custom()
        custom.status_code = 204
        response = with_normalized(custom)
        assert response is custom
        assert response.normalized.format == "empty"  # type: ignore[attr-defined]

    def test_adapter_pickles_with_its_normalizer(self) -> None:
        adapter = ResilientAdapter()
        adapter.normalizer = Normalizer(max_body_size=123)
        assert pickle.loads(pickle.dumps(adapter)).normalizer == Normalizer(max_body_size=123)

    def test_normalized_error_pickles(self) -> None:
        error = NormalizedError("c", "m", {"k": 1}, True)
        assert pickle.loads(pickle.dumps(error)) == error


SOAP_FAULT_11 = b"""<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body><soap:Fault><faultcode>soap:Server</faultcode>
  <faultstring>Order service unavailable</faultstring></soap:Fault></soap:Body>
</soap:Envelope>"""


@responses.activate
def test_soap_fault_sent_with_200_is_an_error() -> None:
    responses.post("https://soap.test/orders", body=SOAP_FAULT_11, status=200, content_type="text/xml")
    normalized = ResilientSession().post("https://soap.test/orders", data=b"<x/>").normalized  # type: ignore[attr-defined]
    assert normalized.ok is False
    assert normalized.format == "xml"
    assert normalized.error is not None
    assert normalized.error.code == "soap:Server"
    assert normalized.error.message == "Order service unavailable"
    with pytest.raises(MalformedResponseError) as info:
        normalized.raise_for_error()
    assert info.value.code == "soap:Server"


@responses.activate
def test_problem_json_sent_with_200_is_an_error_but_plain_error_key_is_data() -> None:
    problem = {"type": "https://api.test/out-of-credit", "title": "Out of credit", "detail": "Balance 30"}
    responses.get("https://api.test/p", json=problem, status=200, content_type="application/problem+json")
    responses.get("https://api.test/d", json={"error": "none", "items": []}, status=200)
    session = ResilientSession()
    problem_view = session.get("https://api.test/p").normalized  # type: ignore[attr-defined]
    assert problem_view.ok is False
    assert problem_view.error is not None
    assert problem_view.error.code == "https://api.test/out-of-credit"
    assert problem_view.error.message == "Balance 30"
    data_view = session.get("https://api.test/d").normalized  # type: ignore[attr-defined]
    assert data_view.ok is True
    assert data_view.error is None
    assert data_view.data == {"error": "none", "items": []}
