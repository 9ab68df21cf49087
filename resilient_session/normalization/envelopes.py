"""The error envelope of an API's JSON or XML body: its code, message and retryable hint."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from .sniff import _str
from .xml import NamespaceMode, element_to_dict, local_name

_IDENTIFIER = re.compile(r"^[A-Za-z][\w.:\-/]{0,79}$")


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
