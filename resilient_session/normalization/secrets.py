"""The secrets a request carried (headers, userinfo, query, form body), to scrub from error text."""

from __future__ import annotations

import base64
import contextlib
from urllib.parse import parse_qsl, unquote, urlsplit

import requests

from .._redact import credential_pair, is_secret_name

_MIN_SECRET = 4


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
