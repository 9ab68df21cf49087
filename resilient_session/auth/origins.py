"""Credentials bound to their integration: which origins they may be sent to, and withholding them elsewhere.

An *origin* is a URL's scheme, host and port: ``https://api.example.com`` and ``https://api.example.com:443``
are one origin; ``http://`` and ``https://``, another host or another port are not. Host names compare
case-insensitively and IDNA-encoded (``bücher.example`` is ``xn--bcher-kva.example``), and a missing port
is the scheme's default (80, 443). Origins are written ``scheme://host:port``.

A session's credentials are *bound* when they came with its integration: the ``auth=`` given to the
constructor (or read from an integrations file) while the session has a ``base_url`` or
``allowed_origins``. A request to any other origin is prepared without them (see
:func:`without_bound_auth`); ``auth=`` passed to one call, and a ``session.auth`` assigned later, are
sent wherever the call goes, as in requests.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

import requests
from requests.auth import AuthBase
from requests.models import PreparedRequest
from requests.utils import get_auth_from_url
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .. import _environ

__all__ = ["allowed_origins", "origin_of", "parse_origins", "without_bound_auth"]

log = logging.getLogger("resilient_session.auth")

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str | bytes) -> str | None:
    """The origin of *url* as ``scheme://host:port``, or ``None`` when it has no scheme or host."""
    if isinstance(url, bytes):
        url = url.decode("utf-8")  # as requests' prepare_url does
    try:
        # urllib3's parser is the one requests prepares URLs with: it lower-cases the scheme and the
        # host and IDNA-encodes a non-ASCII host, so the origin is that of what will be sent.
        parts = parse_url(url.strip())
    except (LocationParseError, ValueError):
        return None
    if not parts.scheme or not parts.host:
        return None
    scheme = parts.scheme.lower()
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme)
    host = parts.host.lower()
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


def parse_origins(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """*value* (one origin, several, or ``None``) as normalized origins, each once, in order.

    :raises ValueError: an item is not an ``http(s)://host[:port]`` URL, or has a path, query, fragment
        or user name: an origin says where credentials may go, nothing narrower.
    :raises TypeError: *value* is not a string or an iterable of strings.
    """
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        raise TypeError(f"allowed_origins must be a URL or a list of URLs, not {type(value).__name__}")
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"allowed_origins must hold URL strings, not {type(item).__name__}")
        origin = _checked_origin(item)
        if origin not in found:
            found.append(origin)
    return tuple(found)


def _checked_origin(item: str) -> str:
    origin = origin_of(item)
    try:
        parts = parse_url(item.strip())
    except (LocationParseError, ValueError):
        parts = None
    if origin is None or parts is None or parts.scheme not in _DEFAULT_PORTS:
        # Not echoed in full: a URL pasted here may carry a credential.
        raise ValueError("allowed_origins: each item must be an http:// or https:// URL with a host")
    if parts.auth is not None:
        raise ValueError(f"allowed_origins: {origin} must not contain a user name or password")
    if (parts.path or "/") != "/" or parts.query is not None or parts.fragment is not None:
        raise ValueError(
            f"allowed_origins: give an origin such as {origin!r}, without a path, query or fragment "
            "(credentials are bound to a whole origin)"
        )
    return origin


def allowed_origins(base_url: str | None, extra: Iterable[str]) -> frozenset[str]:
    """The origins bound credentials may go to: *base_url*'s and the *extra* ones (already normalized)."""
    found = set(extra)
    if base_url:
        own = origin_of(base_url)
        if own is not None:
            found.add(own)
    return frozenset(found)


class _WithoutCredentials(AuthBase):
    """What a request withheld from the session's credentials is prepared with: what requests does when
    a session has no auth, for URL user info (``http://user:pw@host/``) the caller wrote in the URL."""

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        user, password = get_auth_from_url(r.url or "")
        if user or password:
            r.prepare_auth((user, password))
        return r

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_WITHOUT_CREDENTIALS = _WithoutCredentials()


def without_bound_auth(
    request: requests.Request,
    *,
    auth: Any,
    bound: Any,
    base_url: str | None,
    extra: Iterable[str],
    trust_env: bool,
    integration: str | None,
) -> requests.Request:
    """*request*, or a copy prepared without the session's credentials when they are bound and its URL is
    not one of their origins.

    *auth* is ``session.auth`` and *bound* the auth object bound to the integration: they must be the same
    object (an assigned ``session.auth`` is not bound). A call's own ``auth=`` always wins, as in requests.
    A withheld request gets what requests gives a session without auth: the netrc entry of its host (when
    *trust_env*), or the user info in its URL.
    """
    if bound is None or auth is not bound or request.auth is not None:
        return request
    allowed = allowed_origins(base_url, extra)
    if not allowed:
        return request  # nothing to bind to: requests' semantics
    url = request.url
    # requests accepts any object with a string form as a URL (a yarl or furl URL, say).
    origin = origin_of(url if isinstance(url, (str, bytes)) else str(url))
    if origin in allowed:
        return request
    withheld = copy.copy(request)
    replacement: Any = _environ.netrc_auth(url) if trust_env else None
    withheld.auth = replacement or _WITHOUT_CREDENTIALS
    # The origin alone: no path or query (which may hold a secret of the caller's), never the credential.
    log.debug(
        "credentials of %s not sent to %s: not one of its allowed origins",
        f"integration {integration!r}" if integration else "the session",
        origin or "a URL without an origin",
    )
    return withheld
