"""Redaction of secrets in URLs and header values before they reach a log line or a message."""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

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

#: Names that look secret by pattern but are not: a request must keep them across redirects and logs.
NOT_SECRET = frozenset({"idempotency-key", "x-idempotency-key", "idempotency_key", "cache-key", "page-token"})

_extra_names: set[str] = set()


def register_secret_names(names: Iterable[str]) -> None:
    """Treat these query-parameter or header names as secret from now on (case-insensitive)."""
    _extra_names.update(name.lower() for name in names)


def is_secret_name(name: str) -> bool:
    """True when a query parameter or header called *name* carries a secret."""
    lowered = name.lower()
    if lowered in _extra_names or lowered in SECRET_HEADERS:
        return True
    return lowered not in NOT_SECRET and bool(SECRET_NAME.search(lowered))


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


# -- log lines ------------------------------------------------------------------------------------------


class SecretSource(Protocol):
    """Anything that knows secret strings it may send (auth objects)."""

    @property
    def secret_values(self) -> tuple[str, ...]: ...


# Keyed by id() because some sources (``HTTPBasicAuth`` subclasses) are unhashable; entries vanish with them.
_sources: weakref.WeakValueDictionary[int, SecretSource] = weakref.WeakValueDictionary()
# Iterating a WeakValueDictionary while another thread adds to it raises RuntimeError, and the iteration
# runs inside logging calls: auth objects created per request in one thread would break logging in others.
_sources_lock = threading.Lock()

# Shorter values are not credentials; replacing them everywhere would only garble log lines.
_MIN_SECRET_LENGTH = 4

# Credentials after an auth scheme are token68 (RFC 7235): letters, digits, -._~+/ and trailing '='.
_AUTH_SCHEME = re.compile(r"\b(Basic|Bearer|Negotiate)(\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_QUOTED_PAIR = re.compile(r"""(["'])([^"'\s:=]{1,64})\1(\s*:\s*)(["'])(.*?)(?<!\\)\4""")
_KEY_VALUE = re.compile(r"(?<![\w.\-])([A-Za-z0-9_.\-]{1,64})=([^&\s'\"<>,;)]*)")


def register_secret_source(source: SecretSource) -> None:
    """Redact *source*'s ``secret_values`` from log lines while it is alive."""
    with _sources_lock:
        _sources[id(source)] = source


def known_secret_values() -> set[str]:
    """Every secret value currently held by a live registered source."""
    values: set[str] = set()
    with _sources_lock:
        sources = list(_sources.values())
    for source in sources:
        values.update(v for v in source.secret_values if v and len(v) >= _MIN_SECRET_LENGTH)
    return values


def _redact_pair(match: re.Match[str]) -> str:
    quote_char, name, sep, value_quote = match.group(1, 2, 3, 4)
    if not is_secret_name(name):
        return match.group(0)
    return f"{quote_char}{name}{quote_char}{sep}{value_quote}{REDACTED}{value_quote}"


def _redact_key_value(match: re.Match[str]) -> str:
    name = match.group(1)
    return f"{name}={REDACTED}" if is_secret_name(name) and match.group(2) else match.group(0)


def redact_log_text(text: str) -> str:
    """*text* with known secret values, ``Bearer``/``Basic`` credentials and secret-named values redacted.

    Catches the shapes secrets take in library log lines: ``name=value`` (query strings, form bodies),
    ``'name': 'value'`` / ``"name": "value"`` (header dicts, JSON), and ``<scheme> <credentials>``.
    """
    for secret in known_secret_values():
        text = text.replace(secret, REDACTED)
        encoded = quote(secret, safe="")
        if encoded != secret:
            text = text.replace(encoded, REDACTED)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _QUOTED_PAIR.sub(_redact_pair, text)
    return _KEY_VALUE.sub(_redact_key_value, text)


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message (and traceback text) through
    :func:`redact_log_text`. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's problem, not ours
            return True
        redacted = redact_log_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_log_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_log_text(record.exc_text)
        return True


#: Loggers that may print credentials: urllib3 logs request lines with query strings, requests-oauthlib
#: logs token request bodies and token responses at DEBUG. Filters apply to the logger a record is
#: created on, not to its parents, hence the module-level names.
REDACTED_LOGGERS = (
    "resilient_session",
    "resilient_session.auth",
    "resilient_session.oauth2",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests_oauthlib.oauth2_session",
    "oauthlib",
)

_filter = RedactingFilter()
_install_lock = threading.Lock()


def install_log_redaction(names: Iterable[str] = REDACTED_LOGGERS) -> None:
    """Attach the redacting filter to the loggers *names* (idempotent, thread-safe)."""
    with _install_lock:
        for name in names:
            logger = logging.getLogger(name)
            if _filter not in logger.filters:
                logger.addFilter(_filter)
