"""Response normalization: any JSON, XML, text or binary body as one :class:`NormalizedResponse`.

Every response a :class:`~resilient_session.ResilientSession` returns carries ``response.normalized``;
:func:`normalize` gives the same view of a plain ``requests`` response. Nothing is parsed until ``format``,
``data``, ``error`` or ``ok`` is read, and then only once. Reading never raises: a body that cannot be
understood is reported in ``error``, and :meth:`NormalizedResponse.raise_for_error` turns that into the
typed exception. The schema and the XML dict convention are documented in ``docs/normalization.md``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import html
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

import requests
from lxml import etree

from .._redact import credential_pair, is_secret_name, redact_text, redact_url
from ..errors import MalformedResponseError, status_error_for
from ..retry import DEFAULT_STATUS_FORCELIST
from .xml import NamespaceMode, UnsafeXMLError, element_to_dict, local_name, parse_xml

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "REQUEST_ID_HEADERS",
    "Format",
    "NormalizedError",
    "NormalizedResponse",
    "Normalizer",
    "ensure_normalized",
    "normalize",
    "with_normalized",
]

Format = Literal["json", "xml", "text", "empty", "binary"]

#: Bodies larger than this many bytes are not parsed (10 MiB).
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024

#: Response headers read for ``request_id``, first present wins. ``traceparent`` is not among them: it
#: identifies the caller's trace, usually echoed back, not the server's record of the request.
REQUEST_ID_HEADERS: tuple[str, ...] = (
    "X-Request-ID",
    "X-Amzn-RequestId",
    "X-Amz-Request-Id",
    "X-MS-Request-Id",
    "X-Correlation-ID",
    "Request-Id",
)

#: ``error.code`` values that describe the body rather than an error the API reported.
MALFORMED = "malformed_response"
TOO_LARGE = "body_too_large"
UNAVAILABLE = "body_unavailable"
_BODY_CODES = frozenset({MALFORMED, TOO_LARGE, UNAVAILABLE})

# Declared media types that prove nothing about the body: sniff it instead.
_SNIFFED = frozenset({"text/plain", "application/octet-stream", "binary/octet-stream"})
# The format reported when the body could not even be read, by declared format (``None``: unknown).
_EXPECTED: dict[str | None, Format] = {"json": "json", "xml": "xml", "html": "text", "text": "text"}

#: XML bodies from this size on are converted with the cyclic garbage collector paused (see _xml).
_LARGE_XML = 1_000_000
_MESSAGE_LIMIT = 300
# Shorter "secrets" are not redacted from messages: replacing them would garble the text, not protect it.
_MIN_SECRET = 4
_FIRST_BYTE = re.compile(rb"[^\x20\t\r\n]")
_HTML_START = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_IDENTIFIER = re.compile(r"^[A-Za-z][\w.:\-/]{0,79}$")


@dataclass(frozen=True)
class NormalizedError:
    """What went wrong, whatever the API's error format.

    :param code: The API's own error code when its envelope has one (``"NoSuchKey"``, ``"invalid_grant"``,
        a problem ``type`` URI, a SOAP fault code), else ``"http_<status>"``; or, for a body that could not
        be used on a non-error status, ``"malformed_response"``, ``"body_too_large"`` or
        ``"body_unavailable"``.
    :param message: A human-readable explanation (the envelope's message, an HTML page's title, the
        status reason), with the request's credentials redacted.
    :param details: The error envelope as parsed (or what was wrong with the body); ``{}`` when none.
    :param retryable: True when repeating the request may succeed: the envelope says so, the status is
        one the default retry policy retries (429, 502, 503, 504), or the body broke off mid-read.
    """

    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    retryable: bool = False


@dataclass(frozen=True)
class Normalizer:
    """How bodies become a :class:`NormalizedResponse`. Immutable; :meth:`new` returns a changed copy.

    :param max_body_size: Bodies over this many bytes are not parsed: ``data`` is ``None`` and
        ``error.code`` is ``"body_too_large"``. A ``Content-Length`` above the limit is trusted, so a
        streamed body that big is never read. Default 10 MiB.
    :param xml_namespaces: ``"strip"`` (default) names XML elements and attributes by their local name;
        ``"clark"`` keeps the namespace as ``"{uri}local"``. Prefixes are never used either way.
    """

    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    xml_namespaces: NamespaceMode = "strip"

    def __post_init__(self) -> None:
        if self.max_body_size < 0:
            raise ValueError("max_body_size must be >= 0")
        if self.xml_namespaces not in ("strip", "clark"):
            raise ValueError("xml_namespaces must be 'strip' or 'clark'")

    def new(self, **changes: Any) -> Normalizer:
        """A copy with *changes* applied."""
        return dataclasses.replace(self, **changes)

    def __call__(self, response: requests.Response) -> NormalizedResponse:
        """The lazy normalized view of *response* (parses nothing)."""
        return NormalizedResponse(response, self)


DEFAULT_NORMALIZER = Normalizer()


def normalize(response: requests.Response, normalizer: Normalizer | None = None) -> NormalizedResponse:
    """The normalized view of any ``requests`` response; parsing happens on first use."""
    return NormalizedResponse(response, normalizer or DEFAULT_NORMALIZER)


def with_normalized(
    response: requests.Response, normalizer: Normalizer = DEFAULT_NORMALIZER
) -> requests.Response:
    """*response* with a lazy ``response.normalized`` attribute (what every adapter response gets).

    Nothing is created until the attribute is read. A plain ``requests.Response`` is returned as an
    equal instance of a ``Response`` subclass whose ``normalized`` is a property; use the returned
    object. Storing a view up front instead would tie response and view in a reference cycle and hand
    every response, read or not, to the cyclic garbage collector (measured at ~5 % more CPU per request).
    """
    if type(response) is requests.Response:
        lazy = _NormalizableResponse.__new__(_NormalizableResponse)
        # Attribute by attribute, not via __dict__ (or __class__ assignment): that keeps CPython's
        # fast instance-attribute layout, which requests leans on for every response it handles.
        for name, value in vars(response).items():
            setattr(lazy, name, value)
        lazy._normalizer = normalizer
        return lazy
    if isinstance(response, _NormalizableResponse):
        response._normalizer = normalizer
    else:
        # Somebody else's Response subclass: attach eagerly (the view itself still parses lazily).
        response.normalized = NormalizedResponse(response, normalizer)  # type: ignore[attr-defined]
    return response


def ensure_normalized(response: requests.Response) -> None:
    """Give *response* and its redirect hops a ``normalized`` attribute where they have none, in place.

    For responses built by an adapter that is not a ``ResilientAdapter`` (one the user mounted): the
    session attaches the view after the fact, keeping the objects the user's hooks already saw.
    """
    if not response.history and isinstance(response, _NormalizableResponse):
        return  # the common case, kept cheap: it runs for every call
    for hop in (*response.history, response):
        if getattr(type(hop), "normalized", None) is None and "normalized" not in vars(hop):
            hop.normalized = NormalizedResponse(hop)  # type: ignore[attr-defined]


class _NormalizableResponse(requests.Response):
    """A ``requests.Response`` whose ``normalized`` view is created on first access."""

    _normalizer: Normalizer = DEFAULT_NORMALIZER  # also the value after unpickling (not in __attrs__)
    _normalized: NormalizedResponse | None = None

    @property
    def normalized(self) -> NormalizedResponse:
        """The :class:`NormalizedResponse` of this response (created once, parsed lazily)."""
        view = self._normalized
        if view is None:
            view = self._normalized = NormalizedResponse(self, self._normalizer)
        return view


class _Parsed:
    __slots__ = ("data", "error", "format")

    def __init__(self, format: Format, data: Any, error: NormalizedError | None) -> None:
        self.format = format
        self.data = data
        self.error = error


class NormalizedResponse:
    """One schema for every response: ``ok, status, format, data, error, headers, url, method, elapsed,
    attempts, request_id, content_type``.

    Cheap fields read through to the response; ``format``, ``data``, ``error`` and ``ok`` parse the body
    on first access and cache the result. Reading any field never raises. Holds a reference to its response.
    """

    __slots__ = ("_normalizer", "_parsed", "_response")

    def __init__(self, response: requests.Response, normalizer: Normalizer = DEFAULT_NORMALIZER) -> None:
        self._response = response
        self._normalizer = normalizer
        self._parsed: _Parsed | None = None

    # -- cheap fields ------------------------------------------------------------------------------

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return int(self._response.status_code or 0)

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (case-insensitive)."""
        return self._response.headers

    @property
    def url(self) -> str:
        """The final URL, with credentials in userinfo or query redacted."""
        return redact_url(self._response.url)

    @property
    def method(self) -> str | None:
        """The request method, or ``None`` for a response built without a request."""
        request = self._response.request
        return request.method if request is not None else None

    @property
    def elapsed(self) -> float:
        """Seconds between sending the request and the arrival of the response headers."""
        return self._response.elapsed.total_seconds()

    @property
    def attempts(self) -> int:
        """How many attempts the adapter made for this response (1 outside a resilient adapter)."""
        attempts = getattr(self._response, "attempts", None)
        return attempts if isinstance(attempts, int) and attempts > 0 else 1

    @property
    def request_id(self) -> str | None:
        """The server's request id, from the first of :data:`REQUEST_ID_HEADERS` present."""
        headers = self._response.headers
        for name in REQUEST_ID_HEADERS:
            value = headers.get(name)
            if value:
                return value
        return None

    @property
    def content_type(self) -> str | None:
        """The declared media type, lower-case and without parameters (``"application/json"``)."""
        return _media_type(self._response.headers.get("Content-Type"))[0]

    # -- parsed fields -----------------------------------------------------------------------------

    @property
    def format(self) -> Format:
        """``"json"``, ``"xml"``, ``"text"``, ``"empty"`` or ``"binary"``: what the body is (or should be)."""
        return self._parse().format

    @property
    def data(self) -> Any:
        """The body as a JSON value, an XML dict, a str, bytes (binary) or ``None`` (empty or unusable)."""
        return self._parse().data

    @property
    def error(self) -> NormalizedError | None:
        """Why this response is not usable: an error status, or a body that could not be read."""
        return self._parse().error

    @property
    def ok(self) -> bool:
        """True when the status is below 400 and the body was understood (``error is None``)."""
        return self._parse().error is None

    def raise_for_error(self) -> NormalizedResponse:
        """Raise the typed error when ``error`` is set; otherwise return ``self`` for chaining.

        4xx/5xx raise the matching :class:`~resilient_session.APIStatusError` subclass (the envelope's
        message appended to the standard one); an unusable body, or a SOAP Fault / problem+json body
        sent with a success status, raises :class:`~resilient_session.MalformedResponseError` carrying
        the envelope's code.
        """
        error = self.error
        if error is None:
            return self
        response = self._response
        status_error = status_error_for(response, attempts=self.attempts) if self.status >= 400 else None
        if status_error is not None:
            # The reason phrase is the server's too: it may echo a credential like any message.
            head = redact_text(str(status_error.args[0]), _request_secrets(response.request))
            if error.message and error.message not in head:
                head = f"{head} - {error.message}"
            status_error.args = (head,)
            status_error.normalized_error = error  # type: ignore[attr-defined]
            raise status_error
        self._raise_malformed(error)

    def _raise_malformed(self, error: NormalizedError) -> NoReturn:
        response = self._response
        raise MalformedResponseError(
            error.message,
            code=error.code,
            details=error.details,
            request=response.request,
            response=response,
            url=response.url,
            attempts=self.attempts,
            elapsed=self.elapsed,
        )

    def __repr__(self) -> str:
        # Deliberately parse-free: a repr in a log line must not cost a 10 MB parse.
        method = self.method or "?"
        return f"<NormalizedResponse {method} {self.url} [{self.status}]>"

    # -- parsing -----------------------------------------------------------------------------------

    def _parse(self) -> _Parsed:
        parsed = self._parsed
        if parsed is None:
            # Two threads racing here both compute the same value; the cache write is atomic.
            parsed = self._parsed = _Body(self._response, self._normalizer).parse()
        return parsed


class _Body:
    """One pass of format detection, parsing and error recognition for a response."""

    def __init__(self, response: requests.Response, normalizer: Normalizer) -> None:
        self.response = response
        self.normalizer = normalizer
        self.status = int(response.status_code or 0)
        self.media, self.charset = _media_type(response.headers.get("Content-Type"))

    def parse(self) -> _Parsed:
        expected = _declared_format(self.media)
        content = self._content(expected)
        if isinstance(content, NormalizedError):
            return self._finish(_EXPECTED.get(expected, "binary"), None, content)
        if not content:
            return self._finish("empty", None, None)
        if expected == "json":
            return self._structured(content, "json")
        if expected == "xml":
            return self._structured(content, "xml")
        if expected == "html":
            return self._text(content, html_page=True)
        if expected == "text":
            return self._text(content, html_page=False)
        if expected == "binary":
            return self._finish("binary", content, None)
        return self._sniffed(content)

    # -- reading -----------------------------------------------------------------------------------

    def _content(self, expected: str | None) -> bytes | NormalizedError:
        response = self.response
        request = response.request
        if self.status in (204, 304) or (request is not None and request.method == "HEAD"):
            return b""
        limit = self.normalizer.max_body_size
        declared = _int_or_none(response.headers.get("Content-Length"))
        cached: Any = getattr(response, "_content", False)  # requests' own cache; False until read
        already_read = cached is not False
        if declared is not None and declared > limit and not already_read:
            return self._too_large(declared)
        try:
            content = response.content if already_read else read_bounded(response, limit)
        except RuntimeError as exc:  # a streamed body already consumed through iter_content
            return NormalizedError(
                UNAVAILABLE,
                f"the body could not be read: {type(exc).__name__}",
                {"expected": _EXPECTED.get(expected, "binary")},
            )
        except (requests.RequestException, OSError) as exc:
            # The body broke off (reset, stall, fewer bytes than Content-Length): a truncated body is a
            # malformed one, and asking again may well get it whole.
            fmt = _EXPECTED.get(expected, "binary")
            return NormalizedError(
                MALFORMED,
                f"the {fmt} body is malformed: it broke off ({type(exc).__name__})",
                {"expected": fmt, "reason": "incomplete"},
                retryable=True,
            )
        if isinstance(content, Overflow):
            return self._too_large(content.size, read=True)
        if content is None:
            return b""
        if len(content) > limit:
            return self._too_large(len(content))
        return content

    def _too_large(self, size: int, *, read: bool = False) -> NormalizedError:
        limit = self.normalizer.max_body_size
        if read:  # reading stopped at the first chunk past the limit: the full size is unknown
            return NormalizedError(
                TOO_LARGE,
                f"the body is over the {limit}-byte limit (decoded); reading stopped after {size} bytes "
                "and it was not parsed",
                {"size": None, "read": size, "limit": limit},
            )
        return NormalizedError(
            TOO_LARGE,
            f"the body ({size} bytes) is over the {limit}-byte limit and was not parsed",
            {"size": size, "limit": limit},
        )

    # -- formats -----------------------------------------------------------------------------------

    def _structured(self, content: bytes, expected: Format) -> _Parsed:
        """A body declared JSON or XML: parse it as declared, else find out what it really is."""
        ok, value = _try_json(content, self.charset) if expected == "json" else self._try_xml(content)
        if ok:
            return self._finish_structured(expected, value)
        reason = value
        other: Format = "xml" if expected == "json" else "json"
        if _looks_like_html(content):
            if self.status >= 400:
                return self._text(content, html_page=True)
            title = _html_title(_decode_lenient(content, self.charset))
            what = f" ({title})" if title else ""
            reason = f"expected {expected}, got an HTML page{what}"
        elif _starts_like(content, other):
            alt_ok, alt = _try_json(content, self.charset) if other == "json" else self._try_xml(content)
            if alt_ok:
                return self._finish_structured(other, alt)
        elif self.status >= 400 and not _starts_like(content, expected):
            # An error page from a proxy or gateway in front of the API, plain text despite the header.
            return self._plain_or_binary(content)
        return self._malformed(expected, reason)

    def _sniffed(self, content: bytes) -> _Parsed:
        """No useful Content-Type: JSON, XML or HTML if the body parses as such, else text or binary."""
        if _starts_like(content, "json"):
            ok, value = _try_json(content, self.charset)
            if ok:
                return self._finish_structured("json", value)
        elif _looks_like_html(content):
            return self._text(content, html_page=True)
        elif _starts_like(content, "xml"):
            ok, value = self._try_xml(content)
            if ok:
                return self._finish_structured("xml", value)
        if self.media == "text/plain":
            return self._text(content, html_page=False)
        return self._plain_or_binary(content)

    def _plain_or_binary(self, content: bytes) -> _Parsed:
        try:
            text = content.decode(self.charset or "utf-8")
        except (UnicodeDecodeError, LookupError):
            return self._finish("binary", content, None)
        return self._finish_text(text, html_page=False)

    def _text(self, content: bytes, *, html_page: bool) -> _Parsed:
        charset = self.charset or "utf-8"
        try:
            text = content.decode(charset)
        except (UnicodeDecodeError, LookupError) as exc:
            return self._malformed("text", f"the body is not valid {charset} text: {type(exc).__name__}")
        return self._finish_text(text, html_page=html_page)

    def _try_xml(self, content: bytes) -> tuple[bool, Any]:
        try:
            root = parse_xml(content, self.charset)
            large = len(content) >= _LARGE_XML
            return True, (root, element_to_dict(root, self.normalizer.xml_namespaces, large=large))
        except UnsafeXMLError as exc:
            return False, str(exc)
        except (etree.LxmlError, ValueError, LookupError, RecursionError) as exc:
            return False, _xml_reason(exc)

    # -- results -----------------------------------------------------------------------------------

    def _finish_structured(self, fmt: Format, value: Any) -> _Parsed:
        # On 4xx/5xx every known envelope is read. On other statuses only the shapes that cannot be
        # data are: a SOAP Fault, and an application/problem+json body (some services send them with
        # 200); a 200 holding {"error": ...} may well be the resource itself.
        if fmt == "xml":
            root, data = value
            is_fault = self.status >= 400 or local_name(root.tag) == "Envelope"
            envelope = _xml_envelope(root, data, self.normalizer.xml_namespaces) if is_fault else None
            return self._finish("xml", data, None, envelope)
        is_problem = self.status >= 400 or self.media == "application/problem+json"
        envelope = _json_envelope(value, self.media) if is_problem else None
        return self._finish("json", value, None, envelope)

    def _finish_text(self, text: str, *, html_page: bool) -> _Parsed:
        envelope = None
        if self.status >= 400:
            message = _html_title(text) if html_page else _first_line(text)
            envelope = _Envelope(None, message, {}, None) if message else None
        return self._finish("text", text, None, envelope)

    def _malformed(self, expected: Format, reason: str) -> _Parsed:
        error = NormalizedError(
            MALFORMED, f"the {expected} body is malformed: {reason}", {"expected": expected}
        )
        return self._finish(expected, None, error)

    def _finish(
        self,
        fmt: Format,
        data: Any,
        body_error: NormalizedError | None,
        envelope: _Envelope | None = None,
    ) -> _Parsed:
        error = body_error
        if self.status >= 400:
            error = self._status_error(envelope, body_error)
        elif envelope is not None and body_error is None:
            error = NormalizedError(
                envelope.code or "error_envelope",
                self._redact(envelope.message or "the body is an error envelope"),
                dict(envelope.details),
                bool(envelope.retryable),
            )
        elif error is not None:
            error = dataclasses.replace(error, message=self._redact(error.message))
        return _Parsed(fmt, data, error)

    def _status_error(
        self, envelope: _Envelope | None, body_error: NormalizedError | None
    ) -> NormalizedError:
        status = self.status
        code = f"http_{status}"
        message = self.response.reason or _phrase(status)
        details: dict[str, Any] = {}
        retryable = status in DEFAULT_STATUS_FORCELIST
        if envelope is not None:
            code = envelope.code or code
            message = envelope.message or message
            details = dict(envelope.details)
            if envelope.retryable is not None:
                retryable = envelope.retryable
        if body_error is not None:
            details["body_error"] = {"code": body_error.code, "message": body_error.message}
        return NormalizedError(code, self._redact(message), details, retryable)

    def _redact(self, message: str) -> str:
        """Truncate a server-chosen message and blank out any credential the request carried."""
        # Redact before collapsing whitespace (a secret holding "  " must still match) and before
        # truncating, so a cut cannot leave half a credential behind.
        secrets = _request_secrets(self.response.request)
        message = redact_text(_SPACE.sub(" ", redact_text(message, secrets)).strip(), secrets)
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        return message


# -- envelopes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Envelope:
    code: str | None
    message: str | None
    details: Mapping[str, Any]
    retryable: bool | None


def _json_envelope(value: Any, media: str | None) -> _Envelope | None:
    """Recognise the common JSON error shapes (see docs/normalization.md for the list)."""
    if isinstance(value, str):
        return _Envelope(None, value, {}, None)
    if not isinstance(value, dict):
        return None
    retryable = _retryable_hint(value)
    is_problem = media == "application/problem+json" or (
        "title" in value and ("type" in value or "status" in value) and "error" not in value
    )
    if is_problem:  # RFC 9457 (was 7807)
        problem_type = value.get("type")
        code = problem_type if isinstance(problem_type, str) and problem_type != "about:blank" else None
        message = _str(value.get("detail")) or _str(value.get("title"))
        return _Envelope(code, message, value, retryable)
    error = value.get("error")
    if isinstance(error, str):  # {"error": "invalid_grant", "error_description": "..."}
        description = _str(value.get("error_description")) or _str(value.get("message"))
        if _IDENTIFIER.match(error):
            return _Envelope(error, description or error, value, retryable)
        return _Envelope(None, error, value, retryable)
    if isinstance(error, dict):  # {"error": {"code": ..., "message": ...}}
        return _Envelope(
            _code_of(error),
            _message_of(error),
            error,
            retryable if retryable is not None else _retryable_hint(error),
        )
    errors = value.get("errors")
    if isinstance(errors, list) and errors:  # {"errors": [...]} (GraphQL, JSON:API, ...)
        first = errors[0]
        if isinstance(first, dict):
            code, message = _code_of(first), _message_of(first)
        else:
            code, message = None, _str(first)
        if message and len(errors) > 1:
            message = f"{message} (and {len(errors) - 1} more)"
        return _Envelope(code, message, value, retryable)
    for key in ("message", "detail"):  # {"message": "Not Found"} (GitHub), {"detail": ...} (DRF, FastAPI)
        message = _str(value.get(key))
        if message:
            return _Envelope(_code_of(value), message, value, retryable)
    return None


def _code_of(obj: Mapping[str, Any]) -> str | None:
    extensions = obj.get("extensions")
    candidates = [obj.get("code"), obj.get("status"), obj.get("type"), obj.get("error_code")]
    if isinstance(extensions, dict):
        candidates.insert(1, extensions.get("code"))
    for value in candidates:
        if isinstance(value, str) and value:
            return value
    return None


def _message_of(obj: Mapping[str, Any]) -> str | None:
    for key in ("message", "detail", "title", "description", "error_description", "msg"):
        text = _str(obj.get(key))
        if text:
            return text
    return None


def _retryable_hint(obj: Mapping[str, Any]) -> bool | None:
    for key in ("retryable", "retriable"):
        value = obj.get(key)
        if isinstance(value, bool):
            return value
    return None


def _xml_envelope(root: etree._Element, data: dict[str, Any], namespaces: NamespaceMode) -> _Envelope | None:
    """SOAP 1.1/1.2 faults, ``<Error><Code><Message>`` (S3 and AWS), and generic ``<error>`` documents."""
    name = local_name(root.tag)
    if name == "Envelope":
        body = _child(root, "Body")
        fault = _child(body, "Fault") if body is not None else None
        if fault is None:
            return None
        details = element_to_dict(fault, namespaces)
        if _child(fault, "faultcode") is not None or _child(fault, "faultstring") is not None:  # SOAP 1.1
            return _Envelope(
                _text_of(_child(fault, "faultcode")), _text_of(_child(fault, "faultstring")), details, None
            )
        code_element = _child(fault, "Code")  # SOAP 1.2
        code = _text_of(_child(code_element, "Value")) if code_element is not None else None
        subcode = _child(code_element, "Subcode") if code_element is not None else None
        if subcode is not None:
            code = _text_of(_child(subcode, "Value")) or code
        reason = _child(fault, "Reason")
        message = _text_of(_child(reason, "Text")) if reason is not None else None
        return _Envelope(code, message, details, None)
    error = root if name.lower() == "error" else None
    if error is None:  # <ErrorResponse><Error>, <Response><Errors><Error>, <errors><error>
        for child in root.iterchildren("{*}*"):
            child_name = local_name(child.tag).lower()
            if child_name == "error":
                error = child
                break
            if child_name == "errors":
                error = next(
                    (e for e in child.iterchildren("{*}*") if local_name(e.tag).lower() == "error"), None
                )
                break
    if error is None:
        return None
    details = element_to_dict(error, namespaces) if error is not root else data
    if not len(error):
        return _Envelope(None, _text_of(error), details, None)
    code = _text_of(_child(error, "Code", "code"))
    message = _text_of(_child(error, "Message", "message"))
    return _Envelope(code, message, details, None)


def _child(element: etree._Element | None, *names: str) -> etree._Element | None:
    """The first child element whose local name is one of *names*."""
    if element is None:
        return None
    for child in element.iterchildren("{*}*"):
        if local_name(child.tag) in names:
            return child
    return None


def _text_of(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    text = "".join(map(str, element.itertext())).strip()
    return text or None


# -- helpers ---------------------------------------------------------------------------------------


def _media_type(header: str | None) -> tuple[str | None, str | None]:
    """``("application/json", "utf-8")`` from a Content-Type header; ``(None, None)`` when absent."""
    if not header:
        return None, None
    declared, _, params = header.partition(";")
    media = declared.strip().lower() or None
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'").lower() or None
    return media, charset


def _declared_format(media: str | None) -> str | None:
    """The format a media type promises, ``"html"`` for HTML, ``None`` when the body must be sniffed."""
    if media is None or media in _SNIFFED:
        return None
    kind, _, subtype = media.partition("/")
    if subtype == "json" or subtype.endswith("+json") or subtype == "x-json":
        return "json"
    if subtype == "html":
        return "html"
    if subtype == "xml" or subtype.endswith("+xml"):
        return "xml"
    if kind == "text":
        return "text"
    return "binary"


class _NotJSONNumber(ValueError):
    """``NaN``, ``Infinity`` or a number that overflows a float: not a JSON value this view keeps."""


def _refuse_constant(name: str) -> NoReturn:
    raise _NotJSONNumber(f"{name} is not a JSON value (RFC 8259)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJSONNumber(f"the number {text[:20]}{'...' if len(text) > 20 else ''} overflows a float")
    return value


def _try_json(content: bytes, charset: str | None) -> tuple[bool, Any]:
    try:
        # json.loads detects UTF-8/16/32 (RFC 8259) and rejects invalid UTF-8; other charsets decode first.
        # NaN, Infinity and floats that overflow to infinity are refused: they are not JSON values, and
        # keeping them would hand callers (and the CLI's output) something no JSON parser accepts.
        utf = charset is None or charset.startswith("utf")
        text: str | bytes = content if utf else content.decode(charset or "utf-8")
        return True, json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, LookupError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and over-long integers.
        return False, _json_reason(exc)


def _json_reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid {exc.encoding} at byte {exc.start}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, _NotJSONNumber):
        return str(exc)
    return type(exc).__name__


def _xml_reason(exc: BaseException) -> str:
    if isinstance(exc, etree.XMLSyntaxError) and exc.msg:
        return exc.msg.split(", line ")[0]
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return type(exc).__name__


def _first_byte(content: bytes) -> bytes:
    if content[:3] == b"\xef\xbb\xbf":
        content = content[3:]
    match = _FIRST_BYTE.search(content, 0, 4096)
    return match.group() if match else b""


def _starts_like(content: bytes, fmt: str) -> bool:
    first = _first_byte(content)
    return first in (b"{", b"[") if fmt == "json" else first == b"<"


def _looks_like_html(content: bytes) -> bool:
    return _first_byte(content) == b"<" and _HTML_START.search(content, 0, 1024) is not None


def _decode_lenient(content: bytes, charset: str | None) -> str:
    try:
        return content[:65536].decode(charset or "utf-8", "replace")
    except LookupError:
        return content[:65536].decode("utf-8", "replace")


def _html_title(text: str) -> str | None:
    match = _TITLE.search(text, 0, 65536)
    if not match:
        return None
    title = _SPACE.sub(" ", html.unescape(_TAG.sub("", match.group(1)))).strip()
    return title or None


def _first_line(text: str) -> str | None:
    for line in text[:4096].splitlines():
        if line.strip():
            return line.strip()
    return None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _request_secrets(request: requests.PreparedRequest | None) -> list[str]:
    """Credential values the request carried, so a server echoing them back does not leak them.

    Secret-named headers (``Authorization``, ``X-API-Key`` ...) and the credential after their scheme,
    ``user:password`` and the password decoded from ``Basic``, secret-named query parameters and
    userinfo password of the URL, and secret-named fields of a form body. :func:`redact_text` then
    removes each in every encoding.
    """
    if request is None:
        return []
    secrets: list[str] = []
    for name, value in request.headers.items():
        if is_secret_name(name) and isinstance(value, str):
            secrets.append(value)
            scheme, _, credential = value.partition(" ")
            credential = credential.strip()
            if credential and scheme.isalpha():
                secrets.append(credential)
                if scheme.lower() == "basic":
                    secrets.extend(_basic_parts(credential))
    if request.url:
        with contextlib.suppress(ValueError):  # an unparsable URL carries no query to redact
            parts = urlsplit(request.url)
            secrets.extend(v for k, v in parse_qsl(parts.query) if is_secret_name(k) and v)
            if parts.password:
                secrets.extend(_userinfo(parts.username, parts.password))
    secrets.extend(_form_secrets(request))
    return sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)


def _basic_parts(credential: str) -> list[str]:
    """``user:password`` and ``password`` from a ``Basic`` credential (nothing when it is not base64)."""
    try:
        decoded = base64.b64decode(credential, validate=True).decode("latin-1")
    except (ValueError, UnicodeDecodeError):
        return []
    _, sep, password = decoded.partition(":")
    return [decoded, password] if sep else [decoded]


def _userinfo(user: str | None, password: str) -> list[str]:
    plain_user, plain_password = unquote(user or ""), unquote(password)
    pair = credential_pair(plain_user, plain_password)
    return [plain_password, pair] if pair else [plain_password]


def _form_secrets(request: requests.PreparedRequest) -> list[str]:
    body: object = request.body
    content_type = request.headers.get("Content-Type") or ""
    if not isinstance(body, (str, bytes)) or "x-www-form-urlencoded" not in content_type.lower():
        return []
    if len(body) > 65536:
        return []
    text = body.decode("latin-1") if isinstance(body, bytes) else body
    return [v for k, v in parse_qsl(text, keep_blank_values=False) if is_secret_name(k) and v]


class Overflow:
    """The body passed the limit after *size* decoded bytes; nothing more was read."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


_READ_CHUNK = 64 * 1024


def read_bounded(response: requests.Response, limit: int) -> bytes | Overflow | None:
    """The decoded body of a response not read yet, read chunk by chunk up to *limit* bytes.

    Counts bytes after content decoding (gzip, deflate, br, zstd), which urllib3 inflates at most a
    chunk at a time, so neither a compression bomb nor an endless chunked body is held in memory past
    one chunk over the limit. Within the limit the body is kept where ``response.content`` finds it;
    past it the connection is closed and the body is marked consumed (``response.content`` then raises
    requests' ``RuntimeError``, never returns a truncated body).
    """
    if getattr(response, "_content_consumed", False):
        raise RuntimeError("The content for this response was already consumed")
    if response.status_code == 0 or response.raw is None:
        response._content = None
        response._content_consumed = True  # type: ignore[attr-defined]
        return None
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            chunks.clear()
            response._content_consumed = True  # type: ignore[attr-defined]
            response.close()
            return Overflow(size)
        chunks.append(chunk)
    content = b"".join(chunks)
    response._content = content
    response._content_consumed = True  # type: ignore[attr-defined]
    return content
