"""Response normalization: any JSON, XML, text or binary body as one :class:`NormalizedResponse`.

Every response a :class:`~resilient_session.ResilientSession` returns carries ``response.normalized``;
:func:`normalize` gives the same view of a plain ``requests`` response. Nothing is parsed until ``format``,
``data``, ``error`` or ``ok`` is read, and then only once. Reading never raises: a body that cannot be
understood is reported in ``error``, and :meth:`NormalizedResponse.raise_for_error` turns that into the
typed exception. The schema and the XML dict convention are documented in ``docs/normalization.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, overload

import requests
from lxml import etree

from .._compat.requests import cached_content
from .._redact import redact_text, redact_url
from ..errors import MalformedResponseError, status_error_for
from ..policies.quota_headers import Quota, parse_quota
from ..retry import DEFAULT_STATUS_FORCELIST
from .body import Overflow, read_bounded
from .drift import DriftPolicy
from .envelopes import _Envelope, _json_envelope, _xml_envelope
from .secrets import _request_secrets
from .sniff import (
    _SPACE,
    _declared_format,
    _decode_lenient,
    _first_line,
    _html_title,
    _int_or_none,
    _looks_like_html,
    _media_type,
    _phrase,
    _starts_like,
    _try_json,
    _xml_reason,
)
from .xml import NamespaceMode, UnsafeXMLError, element_to_dict, local_name, parse_xml

if TYPE_CHECKING:
    from ..policies.degrade import Degraded

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
T = TypeVar("T")

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
# The format reported when the body could not even be read, by declared format (``None``: unknown).
_EXPECTED: dict[str | None, Format] = {"json": "json", "xml": "xml", "html": "text", "text": "text"}

#: XML bodies from this size on are converted with the cyclic garbage collector paused (see _xml).
_LARGE_XML = 1_000_000
_MESSAGE_LIMIT = 300
# Shorter "secrets" are not redacted from messages: replacing them would garble the text, not protect it.


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
    attempts, request_id, content_type, degraded, quota``.

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
    def degraded(self) -> Degraded | None:
        """``None`` for a fresh answer; for one a :class:`~resilient_session.policies.Degrade` policy gave
        in place of a failure, the :class:`~resilient_session.policies.degrade.Degraded` saying how
        (``kind`` ``"stale"`` or ``"fallback"``, ``reason``, ``age``)."""
        info: Degraded | None = getattr(self._response, "degraded", None)
        return info

    @property
    def quota(self) -> Quota | None:
        """The quota the response's headers describe (IETF ``RateLimit``/``RateLimit-Policy``,
        ``X-RateLimit-*``, ``Retry-After`` on a 429 or 503): limit, remaining, reset; ``None`` if none."""
        return parse_quota(self._response.headers, self.status)

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

    @overload
    def into(self, type_: type[T], *, drift: DriftPolicy | None = None, route: str | None = None) -> T: ...
    @overload
    def into(self, type_: Any, *, drift: DriftPolicy | None = None, route: str | None = None) -> Any: ...
    def into(self, type_: Any, *, drift: DriftPolicy | None = None, route: str | None = None) -> Any:
        """The body as an instance of *type_*: a pydantic model, a dataclass, a ``TypedDict``,
        ``list[Model]``, anything pydantic's ``TypeAdapter`` takes (needs the ``models`` extra), or a
        msgspec ``Struct`` or a type made of them (converted by msgspec).

        The same type reads a JSON body and an XML one (the XML mapping rules are in
        ``docs/normalization.md``). Nothing is validated before this call; a JSON body goes from bytes
        straight into pydantic's JSON validation.

        :param drift: What to do when the body does not fit: ``"raise"``, ``"warn"`` (return what
            validates, in lax mode, and report) or ``"ignore"``. Default: the session's ``drift``
            (``"raise"`` outside a session).
        :param route: The name drift is reported under (default: method and path, ids as ``{id}``).
        :raises APIStatusError: for a 4xx/5xx response (the typed status error, as ``raise_for_error``).
        :raises SchemaMismatchError: the body does not fit (under ``"warn"`` and ``"ignore"`` only when its
            top level cannot be built).
        :raises MalformedResponseError: the body is malformed, too large, unreadable or an error envelope.
        """
        from .typed import into

        return into(self, type_, self._read_declared, drift=drift, route=route)

    def _read_declared(self, expected: str) -> bytes | NormalizedError:
        """The body (read within the size limit), for a body declared *expected*; no parsing. A body
        that could not be read is recorded as the parse result: it cannot be read a second time."""
        body = _Body(self._response, self._normalizer)
        content = body.read_content(expected)
        if isinstance(content, NormalizedError) and self._parsed is None:
            self._parsed = body._finish(_EXPECTED.get(expected, "binary"), None, content)
        return content

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
        content = self.read_content(expected)
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

    def read_content(self, expected: str | None) -> bytes | NormalizedError:
        response = self.response
        request = response.request
        if self.status in (204, 304) or (request is not None and request.method == "HEAD"):
            return b""
        limit = self.normalizer.max_body_size
        declared = _int_or_none(response.headers.get("Content-Length"))
        cached: Any = cached_content(response)  # requests' own cache; False until read
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


#: The ``Response`` class whose ``normalized`` is created on first access: what ``with_normalized`` gives a
#: plain response, and what the session checks for (``isinstance``) before attaching a view itself.
NormalizableResponse = _NormalizableResponse
