"""Credentials configured once and injected into every request: API keys, bearer tokens, basic auth.

Every auth object here is a :class:`requests.auth.AuthBase`, usable as ``session.auth`` or per call
(``auth=``), and a :class:`CredentialAuth`: it declares which header names, query keys and secret values it
sets. :class:`~resilient_session.ResilientSession` uses that declaration to remove every one of them on a
cross-origin redirect (plain requests only removes ``Authorization``), and the log filter of
:mod:`resilient_session.observe.logging` uses the secret values to keep them out of log lines. OAuth2
lives in :mod:`resilient_session.auth.oauth2`.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from requests.auth import AuthBase, HTTPBasicAuth
from requests.models import PreparedRequest

from .._redact import (
    HIDDEN_ENV_NAME,
    REDACTED,
    is_secret_name,
    looks_like_env_name,
    register_secret_names,
    register_secret_source,
)
from ..errors import ConfigurationError

__all__ = [
    "APIKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "CredentialAuth",
    "carry_credentials",
    "env_secret",
    "is_header_safe",
]

# requests' own implementation, typed: it sets ``Authorization: Basic ...``.
_basic_call = cast(Callable[[HTTPBasicAuth, PreparedRequest], PreparedRequest], HTTPBasicAuth.__call__)

# Never stripped by name on a cross-origin redirect: requests rebuilds both just before ``rebuild_auth``
# (``rebuild_proxies`` for the proxy's credentials, the cookie jar's domain rules for cookies).
_REBUILT_BY_REQUESTS = frozenset({"proxy-authorization", "cookie"})


def env_secret(name: str) -> str:
    """The value of environment variable *name*; :class:`ConfigurationError` naming it when unset or empty."""
    value = os.environ.get(name)
    # A secret pasted where the variable's name belongs must not be printed back.
    shown = repr(name) if looks_like_env_name(name) else HIDDEN_ENV_NAME
    if value is None:
        raise ConfigurationError(f"environment variable {shown} is not set")
    if not value.strip():
        raise ConfigurationError(f"environment variable {shown} is empty")
    return value


def _require_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string")
    return value


# Line breaks and control characters: http.client refuses them in a header value with an error message
# that quotes the value, secret and all.
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def is_header_safe(value: str) -> bool:
    """True when *value* holds no line break or control character, so it can be sent in a header."""
    return _UNSENDABLE.search(value) is None


def _require_header_value(value: str, what: str) -> str:
    if not is_header_safe(value):
        raise ConfigurationError(
            f"{what} contains a line break or control character (a trailing newline read from a file?)"
        )
    return value


def _require_name(value: object, what: str) -> str:
    name = _require_text(value, what)
    if any(c.isspace() or c in ":=&?#" for c in name):
        raise ConfigurationError(f"{what} {name!r} is not a valid name")
    return name


class CredentialAuth(AuthBase):
    """Base of resilient-session auth objects: an :class:`~requests.auth.AuthBase` that declares what it sets.

    Subclasses set :attr:`header_names` and :attr:`query_keys` and implement :attr:`secret_values`;
    ``__call__`` must end with :meth:`_remember` so a redirect can strip (cross-origin) or keep
    (same-origin) exactly what was set. While one is alive, its secret values are redacted from log lines
    (see :mod:`resilient_session.observe.logging`).
    """

    #: Header names this object sets on a request.
    header_names: frozenset[str] = frozenset()
    #: Query parameter names this object adds to a request's URL.
    query_keys: frozenset[str] = frozenset()

    def __init__(self) -> None:
        register_secret_source(self)

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The secret strings this object currently sends (for redaction; never log them)."""
        return ()

    def _remember(self, request: PreparedRequest, query: tuple[tuple[str, str], ...] = ()) -> None:
        _applied[request] = _Applied(self.header_names, query)


@dataclass(frozen=True)
class _Applied:
    """What an auth object put on one prepared request."""

    headers: frozenset[str]
    query: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        keys = [name for name, _ in self.query]
        return f"_Applied(headers={sorted(self.headers)!r}, query_keys={keys!r})"


# Keyed weakly by the prepared request so nothing outlives the request it describes.
_applied: weakref.WeakKeyDictionary[PreparedRequest, _Applied] = weakref.WeakKeyDictionary()


def carry_credentials(previous: PreparedRequest, new: PreparedRequest, *, cross_origin: bool) -> None:
    """Carry the credentials of *previous* onto its redirect *new*, or strip them all on a cross-origin hop.

    Cross-origin: removes every header and query key the auth object set on *previous*, and every header
    whose name marks it as a secret (``X-API-Key``, ``X-Auth-Token`` ..., from ``session.headers`` or
    ``headers=`` too). ``Authorization`` itself is left to requests' ``rebuild_auth``. Same-origin: keeps the
    headers (requests already copied them) and re-adds query keys the redirect target dropped.
    """
    applied = _applied.get(previous)
    if cross_origin:
        headers = new.headers
        for name in list(headers):
            lowered = name.lower()
            if lowered in _REBUILT_BY_REQUESTS:
                continue
            if is_secret_name(lowered) or (applied is not None and _in(lowered, applied.headers)):
                del headers[name]
        if applied is not None and applied.query and new.url:
            new.url = _without_query_keys(new.url, {k for k, _ in applied.query})
        return
    if applied is None:
        return
    if applied.query and new.url:
        url = new.url
        for key, value in applied.query:
            url = _with_query_param(url, key, value)
        new.url = url
    _applied[new] = applied


def _in(lowered: str, names: frozenset[str]) -> bool:
    return any(lowered == name.lower() for name in names)


def _split_query(query: str) -> list[str]:
    return [part for part in query.split("&") if part]


def _query_name(part: str) -> str:
    return unquote_plus(part.split("=", 1)[0])


def _without_query_keys(url: str, keys: set[str]) -> str:
    parts = urlsplit(url)
    kept = [p for p in _split_query(parts.query) if _query_name(p) not in keys]
    return urlunsplit(parts._replace(query="&".join(kept)))


def _with_query_param(url: str, key: str, value: str) -> str:
    """*url* with ``key=value`` as the only value of *key*; other parameters are kept byte for byte."""
    parts = urlsplit(url)
    kept = [p for p in _split_query(parts.query) if _query_name(p) != key]
    kept.append(f"{quote(key, safe='')}={quote(value, safe='')}")
    return urlunsplit(parts._replace(query="&".join(kept)))


class APIKeyAuth(CredentialAuth):
    """Send a static API key in a header (default ``X-API-Key``) or in a query parameter.

    ``APIKeyAuth(key)`` sends ``X-API-Key: <key>``; ``APIKeyAuth(key, header="Api-Key")`` another header;
    ``APIKeyAuth(key, query="api_key")`` appends ``?api_key=<key>`` (replacing any value already there).
    Pass either *header* or *query*, not both. While this object is alive, the header or query name counts
    as secret, so log lines and redacted URLs show ``***`` for its value.

    :param key: The API key.
    :param header: Header name carrying the key.
    :param query: Query parameter carrying the key.
    """

    def __init__(self, key: str, header: str | None = None, *, query: str | None = None) -> None:
        self._key = _require_text(key, "API key")
        if header is not None and query is not None:
            raise ConfigurationError("APIKeyAuth takes either header= or query=, not both")
        if query is not None:
            self.query: str | None = _require_name(query, "query parameter")
            self.header: str | None = None
            self.query_keys = frozenset({self.query})
            register_secret_names([self.query], self)
        else:
            self.header = _require_name(header or "X-API-Key", "header")
            _require_header_value(self._key, "API key")
            self.query = None
            self.header_names = frozenset({self.header})
            register_secret_names([self.header], self)
        super().__init__()

    @classmethod
    def from_env(cls, name: str, header: str | None = None, *, query: str | None = None) -> APIKeyAuth:
        """Read the key from environment variable *name*; :class:`ConfigurationError` if it is missing."""
        return cls(env_secret(name), header, query=query)

    @property
    def secret_values(self) -> tuple[str, ...]:
        return (self._key,)

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        if self.header is not None:
            r.headers[self.header] = self._key
            self._remember(r)
        else:
            assert self.query is not None
            r.url = _with_query_param(r.url or "", self.query, self._key)
            self._remember(r, ((self.query, self._key),))
        return r

    def __repr__(self) -> str:
        where = f"header={self.header!r}" if self.header is not None else f"query={self.query!r}"
        return f"{type(self).__name__}(key={REDACTED!r}, {where})"


class BearerAuth(CredentialAuth):
    """Send ``Authorization: Bearer <token>``, from a fixed token or a provider called for every request.

    ``BearerAuth(token)`` for a static token; ``BearerAuth(token_provider=get_token)`` for rotating ones:
    the provider is called once per request (cache inside it if fetching is expensive) and must return a
    non-empty string.

    :param token: A static token.
    :param token_provider: A callable returning the current token.
    """

    header_names = frozenset({"Authorization"})

    def __init__(self, token: str | None = None, *, token_provider: Callable[[], str] | None = None) -> None:
        if (token is None) == (token_provider is None):
            raise ConfigurationError("BearerAuth takes exactly one of token= or token_provider=")
        if token_provider is not None and not callable(token_provider):
            raise ConfigurationError("token_provider must be callable")
        if token is not None:
            _require_header_value(_require_text(token, "bearer token"), "bearer token")
        self._token = token
        self._provider = token_provider
        self._last: str | None = self._token
        super().__init__()

    @classmethod
    def from_env(cls, name: str) -> BearerAuth:
        """Read the token from environment variable *name*; :class:`ConfigurationError` if it is missing."""
        return cls(env_secret(name))

    @property
    def secret_values(self) -> tuple[str, ...]:
        return () if self._last is None else (self._last,)

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        token = self._token
        if token is None:
            assert self._provider is not None
            token = self._provider()
            if not isinstance(token, str) or not token:
                raise ConfigurationError("token_provider returned an empty or non-string token")
            _require_header_value(token, "the token from token_provider")
            self._last = token
        r.headers["Authorization"] = f"Bearer {token}"
        self._remember(r)
        return r

    def __repr__(self) -> str:
        if self._provider is not None:
            return f"{type(self).__name__}(token_provider={self._provider!r})"
        return f"{type(self).__name__}(token={REDACTED!r})"


class BasicAuth(HTTPBasicAuth, CredentialAuth):
    """requests' :class:`~requests.auth.HTTPBasicAuth` with a redacted ``repr`` and :meth:`from_env`.

    Plain ``HTTPBasicAuth`` objects and ``(user, password)`` tuples keep working unchanged; this class only
    adds the conveniences.
    """

    header_names = frozenset({"Authorization"})

    def __init__(self, username: str, password: str) -> None:
        HTTPBasicAuth.__init__(self, _require_text(username, "username"), password)
        CredentialAuth.__init__(self)

    @classmethod
    def from_env(cls, username_var: str, password_var: str | None = None) -> BasicAuth:
        """Read username and password from two environment variables, or from one holding
        ``user:password`` when *password_var* is omitted."""
        if password_var is not None:
            return cls(env_secret(username_var), env_secret(password_var))
        username, colon, password = env_secret(username_var).partition(":")
        if not colon or not username:
            raise ConfigurationError(f"environment variable {username_var!r} must hold 'user:password'")
        return cls(username, password)

    @property
    def secret_values(self) -> tuple[str, ...]:
        password = self.password
        return (password,) if isinstance(password, str) and password else ()

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        r = _basic_call(self, r)
        self._remember(r)
        return r

    def __repr__(self) -> str:
        return f"{type(self).__name__}(username={self.username!r}, password={REDACTED!r})"
