"""Redaction of secrets in URLs and header values before they reach a log line or a message."""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import json
import re
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

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

# Names made secret by a live owner (an APIKeyAuth with a custom header or query name), and their union.
# Each owner is held weakly: when it is collected its names stop being secret, unless another owner
# still names them. The union is rebuilt on every change so is_secret_name reads one frozenset.
_owned_names: dict[int, tuple[weakref.ref[object], frozenset[str]]] = {}
_extra_names: frozenset[str] = frozenset()
# Reentrant: an owner's weakref callback may run, through garbage collection, inside a registration.
_names_lock = threading.RLock()


def register_secret_names(names: Iterable[str], owner: object) -> None:
    """Treat these query-parameter or header names as secret (case-insensitive) while *owner* is alive."""
    global _extra_names
    key = id(owner)

    def forget(ref: weakref.ref[object]) -> None:
        global _extra_names
        with _names_lock:
            if _owned_names.get(key, (None,))[0] is ref:
                del _owned_names[key]
                _extra_names = frozenset().union(*(n for _, n in _owned_names.values()))

    with _names_lock:
        _owned_names[key] = (weakref.ref(owner, forget), frozenset(name.lower() for name in names))
        _extra_names = frozenset().union(*(n for _, n in _owned_names.values()))


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
    if "?" not in url and "@" not in url:
        # Secrets live only in the userinfo and the query: a URL with neither is returned as given
        # (every error and log line of a call redacts its URL; most URLs have nothing to hide).
        return url
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


# -- secrets in every encoding --------------------------------------------------------------------------

# Shorter values are not credentials; replacing them everywhere would only garble the text.
_MIN_SECRET_LENGTH = 4

# What requests' ``requote_uri`` leaves alone in a URL: a secret written into a URL by hand keeps these.
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~"


def secret_forms(secret: str) -> frozenset[str]:
    """Every form of *secret* that servers and libraries commonly produce from it.

    Raw; percent-encoded as ``quote`` and ``quote_plus`` do (form bodies, query strings) with and without
    ``/`` kept, as ``requote_uri`` leaves a hand-written URL, and twice over; JSON-escaped (ASCII-only or
    not, with ``/`` escaped as ``\\/`` or not); HTML/XML-escaped; base64 (standard and URL-safe, padded
    or not, of the UTF-8 and the Latin-1 bytes), which is what ``Basic`` credentials are when *secret* is
    ``user:password`` (then also base64 of the form-encoded halves, as RFC 6749 client auth sends).
    Percent escapes are matched in either hex case by :func:`redact_text`.
    Empty for a secret shorter than 4 characters.
    """
    if not isinstance(secret, str) or len(secret) < _MIN_SECRET_LENGTH:
        return frozenset()
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote(secret, safe=_URI_SAFE),
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        quote(quote_plus(secret), safe=""),
        quote(quote(secret, safe=""), safe=""),
        html.escape(secret, quote=True),
        html.escape(secret, quote=False),
    }
    for ensure_ascii in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1]
        forms.update((escaped, escaped.replace("/", "\\/")))
    plain = [secret]
    user, colon, password = secret.partition(":")
    if colon:
        # ``user:password``: RFC 6749 §2.3.1 form-encodes both halves before base64 (client auth).
        plain.append(f"{quote_plus(user)}:{quote_plus(password)}")
    for text_form in plain:
        for encoding in ("utf-8", "latin-1"):
            try:
                raw = text_form.encode(encoding)
            except UnicodeEncodeError:
                continue
            for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
                text = encoded.decode("ascii")
                forms.update((text, text.rstrip("=")))
    forms.discard("")
    return frozenset(forms)


def _form_pattern(form: str) -> str:
    # Percent escapes in either hex case (``%2F`` and ``%2f``): servers re-encode as they please.
    return "".join(
        f"%[{piece[1].upper()}{piece[1].lower()}][{piece[2].upper()}{piece[2].lower()}]"
        if len(piece) == 3 and piece[0] == "%"
        else re.escape(piece)
        for piece in re.split(r"(%[0-9A-Fa-f]{2})", form)
        if piece
    )


@functools.lru_cache(maxsize=256)
def _scrubber(secrets: frozenset[str]) -> re.Pattern[str] | None:
    forms: set[str] = set()
    for secret in secrets:
        forms.update(secret_forms(secret))
    if not forms:
        return None
    # Longest first, so a form is never cut short by one of its own prefixes (unpadded base64).
    return re.compile("|".join(_form_pattern(form) for form in sorted(forms, key=len, reverse=True)))


def redact_text(text: str, secrets: Iterable[str | None]) -> str:
    """*text* with every form of each secret (see :func:`secret_forms`) replaced by ``***``.

    The one scrubbing mechanism of the package: messages, log lines, spans, CLI output and exception
    chains all go through it. Secrets shorter than 4 characters are left alone.
    """
    pattern = _scrubber(frozenset(s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET_LENGTH))
    return text if pattern is None else pattern.sub(REDACTED, text)


def contains_secret(text: str, secrets: Iterable[str | None]) -> bool:
    """True when *text* holds any form of any of *secrets* (see :func:`secret_forms`)."""
    pattern = _scrubber(frozenset(s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET_LENGTH))
    return pattern is not None and pattern.search(text) is not None


def credential_pair(user: str | None, password: str | None) -> str | None:
    """``user:password``, the string whose base64 is a ``Basic`` credential (``None`` without a password).

    Pass it to :func:`redact_text` with the password itself, so both ``user:password`` and
    ``Basic base64(user:password)`` are caught.
    """
    if not password:
        return None
    return f"{user or ''}:{password}"


def scrubbed_exception(
    exc: BaseException, secrets: Iterable[str | None], *, _depth: int = 0
) -> BaseException:
    """A copy of *exc* safe to chain or report: same type, message scrubbed by :func:`redact_text`.

    The copy has no traceback (its frames' locals hold the secrets), no request or response objects
    (their bodies and headers hold them), string attributes scrubbed, other attributes dropped, and its
    own ``__cause__``/``__context__`` replaced by scrubbed copies (up to 8 levels). Use it as
    ``raise NewError(...) from scrubbed_exception(exc, secrets)``, outside the ``except`` block (or with
    ``__context__`` cleared) so the original does not stay attached as ``__context__``.
    """
    secrets = tuple(s for s in secrets if s)
    cls = type(exc)
    message = redact_text(_describe(exc), secrets)
    try:
        copy = cls.__new__(cls)
        BaseException.__init__(copy, message)
    except Exception:
        copy = RuntimeError(f"{cls.__module__}.{cls.__qualname__}: {message}")
    for name, value in list(vars(exc).items()):
        if name.startswith("__"):
            continue
        safe: Any = None
        if isinstance(value, str):
            safe = redact_text(value, secrets)
        elif isinstance(value, (int, float, bool)) or value is None:
            safe = value
        with contextlib.suppress(Exception):
            setattr(copy, name, safe)
    copy.__traceback__ = None
    copy.__suppress_context__ = exc.__suppress_context__
    if _depth < 8:
        if exc.__cause__ is not None:
            copy.__cause__ = scrubbed_exception(exc.__cause__, secrets, _depth=_depth + 1)
        if exc.__context__ is not None and not exc.__suppress_context__:
            copy.__context__ = scrubbed_exception(exc.__context__, secrets, _depth=_depth + 1)
    return copy


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return type(exc).__name__


# -- environment variable names ---------------------------------------------------------------------

_CONVENTIONAL_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")
HIDDEN_ENV_NAME = "<hidden: it does not look like a variable name and may be the secret itself>"


def looks_like_env_name(name: object) -> bool:
    """True when *name* looks like a conventional environment variable name rather than a secret pasted
    where a name belongs: upper-case letters, digits and ``_``, at most 64 characters, each
    ``_``-separated part at most 20 characters and, when it holds a digit, at most 8
    (``STRIPE_KEY``, ``OAUTH2_CLIENT_SECRET``; not ``sk_live_...`` nor ``AKIAIOSFODNN7EXAMPLE``)."""
    if not isinstance(name, str) or not _CONVENTIONAL_ENV_NAME.match(name):
        return False
    for part in name.split("_"):
        if len(part) > 20 or (len(part) > 8 and any(c.isdigit() for c in part)):
            return False
    return True


def shown_env_name(name: str) -> str:
    """*name* for a message: itself when it looks like a variable name, else :data:`HIDDEN_ENV_NAME`."""
    return name if looks_like_env_name(name) else HIDDEN_ENV_NAME


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
    text = redact_text(text, known_secret_values())
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _QUOTED_PAIR.sub(_redact_pair, text)
    return _KEY_VALUE.sub(_redact_key_value, text)
