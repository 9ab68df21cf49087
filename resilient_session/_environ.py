"""Memoised environment look-ups for :class:`~resilient_session.ResilientSession`.

``requests.Session`` reads the environment on every call: ``merge_environment_settings`` scans all of
``os.environ`` four times for ``*_proxy`` variables (``getproxies_environment``, twice per scan) and
``prepare_request`` looks for a netrc file and parses it. That is about a quarter of a call's client CPU.

Here the results are remembered and thrown away the moment anything they depend on changes, so every call
sees exactly what requests would see:

* **Environment.** One snapshot of the raw environment (the dict behind ``os.environ``, or ``os.environ``
  itself when it was replaced by a plain dict) is kept beside the results. Each call compares the live
  environment with it: a C-level dict comparison (~0.3 µs for 40 variables, ~2 µs for 300), where requests
  decodes and lowercases every variable four times. Any change at all, to any variable (``HTTP_PROXY``,
  ``no_proxy``, ``ALL_PROXY``, ``FOO_PROXY``, ``REQUEST_METHOD``, ``REQUESTS_CA_BUNDLE``,
  ``CURL_CA_BUNDLE``, ``NETRC``, ``HOME``...), or replacing ``os.environ``, drops every remembered result.
* **netrc.** The candidate files (``$NETRC``, else ``~/.netrc`` then ``~/_netrc``) are ``stat``-ed on every
  call, as requests does with ``os.path.exists``; the parsed answer is remembered per file identity
  (path, device, inode, size, modification and change times in nanoseconds). A file that appears,
  disappears, is replaced or is written to is read again. The one change this cannot see is a rewrite that
  keeps the size and lands within the file system's timestamp granularity of the previous write.
* **Operating-system proxies.** On macOS and Windows, Python takes proxies from the system configuration
  (SystemConfiguration, the registry) when no proxy variable is set. Those are not remembered: when the
  environment defines no ``*_proxy`` variable there, every call asks requests, as before.
* **Settings of the session and of the call** (``session.proxies``, ``verify``, ``cert``, ``stream``,
  ``trust_env``, ``auth``, the call's own ``proxies=`` including ``no_proxy``) are never remembered; they
  are merged on every call exactly as requests merges them.

The memo is process-wide (the environment is) and bounded; it is rebuilt, not locked: two threads racing
on a change each compute the answer for the environment they saw.

One more pure function is remembered while preparing a request: ``PreparedRequest.prepare_url`` of a URL
with no query parameters to add (URL parsing, IDNA and requoting depend on the URL string alone).

When a test or an application replaces one of the helpers requests calls (``get_environ_proxies``,
``merge_setting``, ``get_netrc_auth`` ...), requests' own method runs instead, so the patch is honoured
exactly; the helpers themselves are reached through :mod:`resilient_session._compat.requests`.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from http import cookiejar as cookielib
from typing import Any

import requests
from requests.cookies import RequestsCookieJar, cookiejar_from_dict
from requests.structures import CaseInsensitiveDict

from ._compat import requests as requests_compat
from ._compat.requests import NETRC_FILES, OriginalSession, merge_cookies, merge_hooks, merge_setting
from ._compat.stdlib import environ_dict

__all__ = ["authority_of", "merge_environment_settings", "netrc_auth", "prepare_request", "prepared_url"]

#: Results remembered per environment before the memo is emptied (distinct hosts, netrc files).
MAX_ENTRIES = 512

# Where Python may take proxies from the operating system when no proxy variable is set.
_OS_PROXIES = sys.platform == "darwin" or os.name == "nt"

_MISSING = object()


class _Memo:
    """Everything remembered for one snapshot of the environment."""

    __slots__ = ("ca_bundle", "environ", "netrc", "netrc_locations", "proxies", "source", "system_proxies")

    def __init__(self, source: object, environ: dict[Any, Any]) -> None:
        self.source = source  # the mapping the snapshot was taken from
        self.environ = environ  # a copy of it
        env = os.environ
        self.ca_bundle: str | None = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")
        # Only consulted on macOS/Windows: with no proxy variable, the OS configuration decides.
        self.system_proxies = _OS_PROXIES and not urllib.request.getproxies_environment()
        netrc_file = env.get("NETRC")
        names = (netrc_file,) if netrc_file is not None else tuple(f"~/{f}" for f in NETRC_FILES)
        self.netrc_locations = tuple(os.path.expanduser(name) for name in names)
        self.proxies: dict[tuple[str, str | None], dict[str, str]] = {}
        self.netrc: dict[tuple[Any, ...], tuple[str, str] | None] = {}


_memo: _Memo | None = None
_raw_environ = environ_dict
# The os.environ object last seen, and what environ_dict() answered for it.
_seen: tuple[object, dict[Any, Any] | None] = (None, None)


def _current() -> _Memo | None:
    """The memo for the environment as it is now, or None when the environment cannot be watched."""
    global _memo, _seen
    env = os.environ
    seen = _seen
    if env is seen[0]:
        data = seen[1]  # the same os.environ object keeps the same dict behind it
    else:
        data = _raw_environ()
        _seen = (env, data)
    if data is None:
        return None
    memo = _memo
    if memo is not None and memo.source is data and memo.environ == data:
        return memo
    memo = _memo = _Memo(data, dict(data))
    return memo


def _still(memo: _Memo) -> bool:
    """True when the environment has not changed since *memo* was taken (checked after a computation)."""
    return _raw_environ() is memo.source and memo.environ == memo.source


def authority_of(url: str) -> str:
    """The part of *url* that decides its host and port (what proxy and netrc answers depend on).

    For ``http(s)://`` URLs that is everything up to the path; anything else keeps all but the query and
    fragment, which ``urlsplit`` never reads a host from.
    """
    return _AUTHORITY.match(url).group()  # type: ignore[union-attr]  # the pattern matches any string


_AUTHORITY = re.compile(r"https?://[^/?#]*|[^?#]*", re.DOTALL)


def _environ_proxies(memo: _Memo, url: str, no_proxy: str | None) -> dict[str, str]:
    key = (authority_of(url), no_proxy)
    found = memo.proxies.get(key)
    if found is not None:
        return found
    proxies = requests_compat.environ_proxies(url, no_proxy)
    if _still(memo):
        if len(memo.proxies) >= MAX_ENTRIES:
            memo.proxies.clear()
        memo.proxies[key] = proxies
    return proxies


def _merge(request_setting: Any, session_setting: Any, dict_class: type = OrderedDict) -> Any:
    """``requests.sessions.merge_setting``, without its protocol checks when both sides are plain dicts.

    Only called while requests' own ``merge_setting`` is in place (see the module docstring)."""
    if session_setting is None:
        return request_setting
    if request_setting is None:
        return session_setting
    plain = (dict, OrderedDict, CaseInsensitiveDict)
    if type(session_setting) in plain and type(request_setting) in plain:
        merged = dict_class(list(session_setting.items()))
        merged.update(list(request_setting.items()))
        for key in [k for k, v in merged.items() if v is None]:
            del merged[key]
        return merged
    if type(request_setting) in (bool, str, tuple) or type(session_setting) in (bool, str, tuple):
        return request_setting  # not both mappings
    return merge_setting(request_setting, session_setting, dict_class=dict_class)


def merge_environment_settings(
    session: requests.Session,
    url: Any,
    proxies: Any,
    stream: Any,
    verify: Any,
    cert: Any,
    fallback: Callable[..., Any],
) -> Any:
    """``requests.Session.merge_environment_settings`` with the environment's part remembered.

    *fallback* is requests' own method, used whenever the answer cannot be remembered.
    """
    if requests_compat.environment_helpers_replaced():
        return fallback(url, proxies, stream, verify, cert)
    if session.trust_env:
        memo = _current()
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        if (
            memo is None
            or memo.system_proxies
            or type(url) is not str
            or not (no_proxy is None or type(no_proxy) is str)
        ):
            return fallback(url, proxies, stream, verify, cert)
        env_proxies = _environ_proxies(memo, url, no_proxy)
        if proxies is not None:
            for k, v in env_proxies.items():
                proxies.setdefault(k, v)
        if verify is True or verify is None:
            verify = memo.ca_bundle or verify
    # merge_setting, spelled out for what a call usually passes (None: the session's setting).
    return {
        "proxies": _merge(proxies, session.proxies),
        "stream": session.stream if stream is None else _merge(stream, session.stream),
        "verify": (
            session.verify
            if verify is None
            else verify
            if type(verify) is str or type(verify) is bool  # not a mapping: the call's wins
            else _merge(verify, session.verify)
        ),
        "cert": session.cert if cert is None else _merge(cert, session.cert),
    }


def netrc_auth(url: Any) -> Any:
    """``requests.utils.get_netrc_auth(url)``, parsing each netrc file once per version of it."""
    lookup = requests_compat.netrc_auth  # what requests' prepare_request calls
    memo = _current()
    if memo is None or type(url) is not str or requests_compat.netrc_helpers_replaced():
        return lookup(url)
    for location in memo.netrc_locations:
        try:  # os.path.exists, keeping what stat found
            st = os.stat(location)
        except (OSError, ValueError):
            continue
        key = (authority_of(url), location, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        found = memo.netrc.get(key, _MISSING)
        if found is not _MISSING:
            return found
        auth = lookup(url)
        if _still(memo):
            if len(memo.netrc) >= MAX_ENTRIES:
                memo.netrc.clear()
            memo.netrc[key] = auth
        return auth
    return None  # no netrc file: requests answers None before looking at the URL


def prepare_request(session: requests.Session, request: requests.Request) -> requests.PreparedRequest:
    """``requests.Session.prepare_request`` with the netrc look-up remembered (see :func:`netrc_auth`).

    The same steps in the same order as requests 2.32-2.34; :data:`REPLICATES_REQUESTS` says whether the
    installed requests still has the method this mirrors (otherwise the session calls requests' own).
    """
    if requests_compat.prepare_helpers_replaced():
        return OriginalSession.prepare_request(session, request)
    url = request.url
    method = request.method

    cookies = request.cookies or {}
    if not isinstance(cookies, cookielib.CookieJar):
        cookies = cookiejar_from_dict(cookies)  # type: ignore[no-untyped-call]
    merged_cookies = merge_cookies(merge_cookies(RequestsCookieJar(), session.cookies), cookies)

    auth = request.auth
    if session.trust_env and not auth and not session.auth:
        auth = netrc_auth(url)

    p = requests.PreparedRequest()
    params = _merge(request.params, session.params)
    remember_url = type(url) is str and not params and requests.PreparedRequest.prepare_url is _PREPARE_URL
    if remember_url:  # shadowed on this instance only, for the one prepare() call below
        p.prepare_url = functools.partial(_prepare_url, p)  # type: ignore[method-assign]
    try:
        p.prepare(
            method=method.upper(),
            url=url,
            files=request.files,
            data=request.data,
            json=request.json,
            headers=_merge(request.headers, session.headers, dict_class=CaseInsensitiveDict),
            params=params,
            auth=_merge(auth, session.auth),
            cookies=merged_cookies,
            hooks=merge_hooks(request.hooks, session.hooks),
        )
    finally:
        if remember_url:
            del p.prepare_url
    return p


_PREPARE_URL = requests.PreparedRequest.prepare_url
# Prepared form of URLs sent without query parameters: PreparedRequest.prepare_url (parsing, IDNA,
# requoting; ~18 us) is a pure function of the URL string then.
_prepared_urls: dict[str, str] = {}


def prepared_url(url: str) -> str | None:
    """``PreparedRequest.prepare_url(url, None)``'s answer for *url*, remembered; None when requests would
    raise or keep something other than a string (the caller lets requests' steps answer)."""
    known = _prepared_urls.get(url)
    if known is not None:
        return known
    scratch = requests.PreparedRequest()
    try:
        _PREPARE_URL(scratch, url, None)
    except Exception:
        return None
    if type(scratch.url) is not str:
        return None
    if len(_prepared_urls) >= MAX_ENTRIES:
        _prepared_urls.clear()
    _prepared_urls[url] = scratch.url
    return scratch.url


def _prepare_url(prepared: requests.PreparedRequest, url: Any, params: Any) -> None:
    if type(url) is str and not params:
        known = _prepared_urls.get(url)
        if known is not None:
            prepared.url = known
            return
        _PREPARE_URL(prepared, url, params)  # raises as requests does for an invalid URL
        if len(_prepared_urls) >= MAX_ENTRIES:
            _prepared_urls.clear()
        if type(prepared.url) is str:
            _prepared_urls[url] = prepared.url
        return
    _PREPARE_URL(prepared, url, params)


# The names requests' Session.prepare_request uses (requests 2.32-2.34, ignoring the ``cast`` calls typing
# added in 2.33): when they differ, requests changed the method and the session calls requests' own.
_MIRRORED_NAMES = frozenset(
    {
        "url", "method", "cookies", "isinstance", "cookielib", "CookieJar", "cookiejar_from_dict",
        "merge_cookies", "RequestsCookieJar", "auth", "trust_env", "get_netrc_auth", "PreparedRequest",
        "prepare", "upper", "files", "data", "json", "merge_setting", "headers", "CaseInsensitiveDict",
        "params", "merge_hooks", "hooks",
    }
)  # fmt: skip


def _replicates_requests() -> bool:
    names = requests_compat.prepare_request_names()
    return names is not None and names - {"cast", "str"} == _MIRRORED_NAMES


REPLICATES_REQUESTS = _replicates_requests()
#: requests' ``Session.prepare_request`` as imported: when it was replaced since (wrapped by an
#: instrumentation library, say), the session calls the replacement.
PREPARE_REQUEST = OriginalSession.prepare_request
