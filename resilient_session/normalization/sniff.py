"""What a body is: its declared media type, a sniffed format, lenient decoding, safe small parsers."""

from __future__ import annotations

import html
import json
import math
import re
from http import HTTPStatus
from typing import Any, NoReturn

from lxml import etree

_SNIFFED = frozenset({"text/plain", "application/octet-stream", "binary/octet-stream"})

_FIRST_BYTE = re.compile(rb"[^\x20\t\r\n]")

_HTML_START = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)

_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)

_TAG = re.compile(r"<[^>]+>")

_SPACE = re.compile(r"\s+")


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
        # Some of json's messages already end in "at" ("Unterminated string starting at").
        at = "" if exc.msg.endswith(" at") else " at"
        return f"{exc.msg}{at} line {exc.lineno} column {exc.colno}"
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
