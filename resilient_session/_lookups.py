"""``HTTPAdapter``'s per-request look-ups, remembered where their answer depends on their arguments alone.

For every attempt requests' ``HTTPAdapter.send`` parses the URL three times to find the connection pool
(``get_connection_with_tls_context``: the proxy, then the pool's host parameters) and the request line
(``request_url``: the proxy again, the scheme, ``path_url``). Without a proxy, those answers are pure
functions of the URL and the TLS settings, so :class:`~resilient_session.ResilientAdapter` remembers them:

* the pool's key attributes (``build_connection_pool_key_attributes``) per (scheme and authority of the
  URL, ``verify``, ``cert``, and whether a ``verify`` path is a directory, which is asked of the file
  system on every call as requests does); the pool itself is still asked of the pool manager on every
  attempt, so a pool closed, evicted or replaced is never reused;
* the request line per URL.

With proxies, a subclass that overrides ``build_connection_pool_key_attributes``, or a request that is not
a plain ``PreparedRequest`` with a ``str`` URL, requests' own methods answer. Each memo holds at most
:data:`MAX_ENTRIES` answers per adapter and is emptied when full.
"""

from __future__ import annotations

import os
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ._environ import authority_of

__all__ = ["MAX_ENTRIES", "pool_key_attributes", "request_line"]

MAX_ENTRIES = 256

_BUILD_KEY_ATTRIBUTES = HTTPAdapter.build_connection_pool_key_attributes
_PreparedRequest = requests.PreparedRequest


class _Memo:
    __slots__ = ("key_attributes", "lines", "poolmanager")

    def __init__(self, poolmanager: object) -> None:
        self.poolmanager = poolmanager
        self.key_attributes: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}
        self.lines: dict[str, str] = {}


def _memo(adapter: HTTPAdapter) -> _Memo:
    # Per adapter and per pool manager: before requests 2.34 the key attributes also read the pool
    # manager's own TLS settings, and unpickling or init_poolmanager() makes a new one.
    memo: _Memo | None = adapter.__dict__.get("_lookups")
    poolmanager = adapter.__dict__.get("poolmanager")
    if memo is None or memo.poolmanager is not poolmanager:
        memo = adapter.__dict__["_lookups"] = _Memo(poolmanager)
    return memo


def pool_key_attributes(
    adapter: HTTPAdapter, request: requests.PreparedRequest, verify: Any, proxies: Any, cert: Any
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``adapter.build_connection_pool_key_attributes(request, verify, cert)`` remembered, or None when
    requests' own ``get_connection_with_tls_context`` must run (a proxy may apply, or the answer is not
    a pure function of the arguments)."""
    url = request.url
    if (
        proxies
        or type(request) is not _PreparedRequest
        or type(url) is not str
        or not (type(verify) is bool or type(verify) is str)
        or not (cert is None or type(cert) is str or (type(cert) is tuple and len(cert) == 2))
        or type(adapter).build_connection_pool_key_attributes is not _BUILD_KEY_ATTRIBUTES
    ):
        return None
    memo = _memo(adapter)
    # requests asks the file system on every call whether a verify path is a directory; so does this.
    key = (authority_of(url), verify, cert, type(verify) is str and os.path.isdir(verify))
    known = memo.key_attributes.get(key)
    if known is not None:
        return known
    try:
        found: tuple[dict[str, Any], dict[str, Any]] = adapter.build_connection_pool_key_attributes(
            request, verify, cert
        )  # type: ignore[assignment]
    except ValueError:
        return None  # requests' path raises it as InvalidURL
    if len(memo.key_attributes) >= MAX_ENTRIES:
        memo.key_attributes.clear()
    memo.key_attributes[key] = found
    return found


def request_line(adapter: HTTPAdapter, request: requests.PreparedRequest, proxies: Any) -> str | None:
    """``HTTPAdapter.request_url(request, proxies)`` remembered per URL when no proxy applies, else None."""
    url = request.url
    if proxies or type(request) is not _PreparedRequest or type(url) is not str:
        return None
    memo = _memo(adapter)
    line = memo.lines.get(url)
    if line is None:
        line = HTTPAdapter.request_url(adapter, request, proxies)
        if len(memo.lines) >= MAX_ENTRIES:
            memo.lines.clear()
        memo.lines[url] = line
    return line
