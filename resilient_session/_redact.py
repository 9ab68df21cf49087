"""Redaction of secrets in URLs and header values before they reach a log line or a message."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

#: Query parameter names whose values are secrets, matched case-insensitively as whole names or suffixes
#: (``api_key``, ``x-api-key``, ``apikey``, ``access_token``, ``client_secret`` ...).
SECRET_NAME = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|apikey|key|token|access[_\-]?token|refresh[_\-]?token|id[_\-]?token|"
    r"secret|client[_\-]?secret|password|passwd|pwd|signature|sig|auth|authorization|session|credential[s]?)$",
    re.IGNORECASE,
)

#: Header names whose values are always secrets.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
    }
)

_extra_names: set[str] = set()


def register_secret_names(names: Iterable[str]) -> None:
    """Treat these query-parameter or header names as secret from now on (case-insensitive)."""
    _extra_names.update(name.lower() for name in names)


def is_secret_name(name: str) -> bool:
    """True when a query parameter or header called *name* carries a secret."""
    lowered = name.lower()
    return lowered in SECRET_HEADERS or lowered in _extra_names or bool(SECRET_NAME.search(lowered))


def redact_url(url: str | bytes | None) -> str:
    """Return *url* with userinfo passwords and secret query values replaced by ``***``."""
    if url is None:
        return ""
    if isinstance(url, bytes):
        url = url.decode("utf-8", "replace")
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostport}" if ":" in userinfo else f"{REDACTED}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if is_secret_name(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in *text* by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
