"""``HTTPAdapter``'s per-request look-ups, remembered where their answer depends on their arguments alone.

For every attempt requests' ``HTTPAdapter.send`` parses the URL three times to find the connection pool
(``get_connection_with_tls_context``: the proxy, then the pool's host parameters) and the request line
(``request_url``: the proxy again, the scheme, ``path_url``). Without a proxy, those answers are pure
functions of the URL and the TLS settings, so :class:`~resilient_session.ResilientAdapter` remembers them:

* the pool's key (what ``build_connection_pool_key_attributes`` and urllib3's ``connection_from_host``
  make of the URL's scheme and authority, ``verify``, ``cert`` and the pool manager's own settings) per
  (authority, ``verify``, ``cert``, whether a ``verify`` path is a directory: asked of the file system on
  every call, as requests does). The pool itself is asked of the pool manager by that key on every
  attempt (``connection_from_pool_key``), so a pool closed, evicted or replaced is never reused;
* the request line per URL.

With proxies, a subclass that overrides ``build_connection_pool_key_attributes``, a request that is not a
plain ``PreparedRequest`` with a ``str`` URL, or requests' methods replaced since import (wrapped by an
instrumentation library, say), requests' methods as they are answer. Each memo holds at most
:data:`MAX_ENTRIES` answers per adapter and is emptied when full.
"""

from __future__ import annotations

import os
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ._compat.urllib3 import pool_key_of
from ._environ import authority_of

__all__ = ["MAX_ENTRIES", "connection_pool", "request_line"]

MAX_ENTRIES = 256

_BUILD_KEY_ATTRIBUTES = HTTPAdapter.build_connection_pool_key_attributes
# requests' methods as imported: replaced since (wrapped by an instrumentation library, say), they answer.
_GET_CONNECTION = HTTPAdapter.get_connection_with_tls_context
_REQUEST_URL = HTTPAdapter.request_url
_PreparedRequest = requests.PreparedRequest


class _Memo:
    __slots__ = ("lines", "poolmanager", "pools")

    def __init__(self, poolmanager: object) -> None:
        self.poolmanager = poolmanager
        # (authority, verify, cert, verify is a directory) -> (pool key, request context, the manager's
        # connection_pool_kw they were built from)
        self.pools: dict[tuple[Any, ...], tuple[Any, dict[str, Any], dict[str, Any]]] = {}
        self.lines: dict[str, str] = {}


def connection_pool(
    adapter: HTTPAdapter, request: requests.PreparedRequest, verify: Any, proxies: Any, cert: Any
) -> Any:
    """The pool ``HTTPAdapter.get_connection_with_tls_context`` returns for these arguments, found by a
    remembered pool key; None when requests' own method must run (a proxy may apply, or the answer is not
    a pure function of the arguments)."""
    url = request.url
    if (
        proxies
        or type(request) is not _PreparedRequest
        or type(url) is not str
        or not (type(verify) is bool or type(verify) is str)
        or not (cert is None or type(cert) is str or (type(cert) is tuple and len(cert) == 2))
        or type(adapter).build_connection_pool_key_attributes is not _BUILD_KEY_ATTRIBUTES
        or HTTPAdapter.get_connection_with_tls_context is not _GET_CONNECTION
    ):
        return None
    # Per adapter and pool manager: init_poolmanager() (or unpickling) makes a new manager.
    manager = adapter.__dict__.get("poolmanager")
    memo: _Memo | None = adapter.__dict__.get("_lookups")
    if memo is None or memo.poolmanager is not manager:
        memo = adapter.__dict__["_lookups"] = _Memo(manager)
    # requests asks the file system on every call whether a verify path is a directory; so does this.
    key = (authority_of(url), verify, cert, type(verify) is str and os.path.isdir(verify))
    known = memo.pools.get(key)
    if known is None or known[2] != manager.connection_pool_kw:  # type: ignore[union-attr]
        try:
            host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(request, verify, cert)
        except ValueError:
            return None  # requests' path raises it as InvalidURL
        found = pool_key_of(manager, pool_kwargs=dict(pool_kwargs), **host_params)
        if found is None:
            return None
        known = (*found, dict(manager.connection_pool_kw))  # type: ignore[union-attr]
        if len(memo.pools) >= MAX_ENTRIES:
            memo.pools.clear()
        memo.pools[key] = known
    return manager.connection_from_pool_key(known[0], request_context=dict(known[1]))  # type: ignore[union-attr]


def request_line(adapter: HTTPAdapter, request: requests.PreparedRequest, proxies: Any) -> str | None:
    """``HTTPAdapter.request_url(request, proxies)`` remembered per URL when no proxy applies, else None."""
    url = request.url
    if (
        proxies
        or type(request) is not _PreparedRequest
        or type(url) is not str
        or HTTPAdapter.request_url is not _REQUEST_URL
    ):
        return None
    memo: _Memo | None = adapter.__dict__.get("_lookups")
    manager = adapter.__dict__.get("poolmanager")
    if memo is None or memo.poolmanager is not manager:
        memo = adapter.__dict__["_lookups"] = _Memo(manager)
    line = memo.lines.get(url)
    if line is None:
        line = HTTPAdapter.request_url(adapter, request, proxies)
        if len(memo.lines) >= MAX_ENTRIES:
            memo.lines.clear()
        memo.lines[url] = line
    return line
