"""``Session.prepare_request`` for the common request, from remembered parts.

Most calls prepare the same shape of request: a method and a URL, the session's headers (plus the request
id), no body, no parameters, no cookies, no credentials and no hooks. requests prepares each one from
scratch: it merges the session's settings into new dicts and cookie jars, validates every header with a
regular expression, asks an empty cookie jar for a ``Cookie`` header and registers no hooks, about 150 Python
calls. For that shape the result depends only on the method, the prepared URL and the headers, so
:func:`prepare_simple` builds it from parts remembered per value:

* the prepared URL (``_environ``'s memo of ``PreparedRequest.prepare_url``);
* the session's headers merged and validated, per exact content of ``session.headers`` (compared in C with
  the remembered copy on every call, so a header set, changed or removed is seen by the next call);
* each request header validated once per (name, value).

Anything else (a body, ``params``, ``cookies``, ``auth`` or ``hooks`` on the request or the session, a
netrc entry for the host, credentials in the URL, a header name that is not ``str``, a header requests
would refuse, a subclass of ``Request``, a replaced ``PreparedRequest`` method or helper) returns ``None``
and the caller runs requests' own steps, which answer or raise exactly as requests does.
``tests/test_prepare.py`` compares both paths attribute by attribute.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from typing import Any

import requests
from requests.cookies import RequestsCookieJar
from requests.hooks import HOOKS
from requests.structures import CaseInsensitiveDict

from . import _environ
from ._compat.requests import (
    HEADER_NAME_STR,
    HEADER_VALUE_STR,
    header_store,
    headers_from_store,
    prepared_without_body,
)
from ._compat.stdlib import cookie_jar_empty, stamp_cookie_jar
from .observe.request_id import new_request_id

__all__ = ["prepare_simple"]

_PreparedRequest = requests.PreparedRequest
_Request = requests.Request

#: What requests' ``prepare()`` calls, as imported: when any of them is replaced, requests' path runs.
_STEP_NAMES = (
    "__init__", "prepare", "prepare_method", "prepare_url", "prepare_headers", "prepare_cookies",
    "prepare_body", "prepare_content_length", "prepare_auth", "prepare_hooks", "register_hook",
)  # fmt: skip
_STEPS = tuple(getattr(_PreparedRequest, name) for name in _STEP_NAMES)

# No hook registered, as requests' default_hooks() makes it (a dict of lists compares by value: a
# subclass of dict or list, or a tuple, differs from it only in type, and requests iterates them alike).
_NO_HOOKS: dict[str, list[Any]] = {event: [] for event in HOOKS}

#: Remembered merges of a session's headers: their (name, value) pairs -> the validated store.
_session_headers: dict[tuple[Any, ...], OrderedDict[str, tuple[str, Any]] | None] = {}
_MAX_ENTRIES = 512


_steps_now = operator.attrgetter(*_STEP_NAMES)
_EMPTY_TYPES = (tuple, list, dict, type(None))


def prepare_simple(
    session: requests.Session, request: requests.Request, request_id_header: str | None = None
) -> requests.PreparedRequest | None:
    """What requests' ``Session.prepare_request`` returns for *request*, or None when it is not the simple
    shape described in the module docstring (the caller then runs requests' steps).

    With *request_id_header*, the request is prepared as if ``with_request_id`` had added a new id to its
    headers first (after its own; none when the request or the session names that header already)."""
    method = request.method
    url = request.url
    if (
        type(request) is not _Request
        or type(method) is not str
        or type(url) is not str
        or request.json is not None
        or request.auth is not None
        # Each "empty" test asks the type first: a value of another type (a stream, a DataFrame) is never
        # compared or asked its truth. requests.Request makes data=[] and files=[] of None.
        or type(request.data) not in _EMPTY_TYPES
        or request.data
        or type(request.files) not in _EMPTY_TYPES
        or request.files
        or type(request.params) not in _EMPTY_TYPES
        or request.params
        or type(request.cookies) not in _EMPTY_TYPES
        or request.cookies
        or session.auth is not None
        or type(session.params) not in _EMPTY_TYPES
        or session.params
        or request.hooks != _NO_HOOKS
        or session.hooks != _NO_HOOKS
        or "@" in url
    ):
        return None
    jar = session.cookies
    if type(jar) is not RequestsCookieJar or not cookie_jar_empty(jar):
        return None
    session_headers = session.headers
    if type(session_headers) is not CaseInsensitiveDict or _steps_now(_PreparedRequest) != _STEPS:
        return None
    if session.trust_env and _environ.netrc_auth(url) is not None:
        return None
    prepared_url = _environ.prepared_url(url)
    if prepared_url is None or "@" in prepared_url:
        return None
    store = _merged_headers(session_headers, request.headers, request_id_header)
    if store is None:
        return None
    method = method.upper()
    if method not in ("GET", "HEAD") and store.get("content-length", (None, None))[1] is None:
        store["content-length"] = ("Content-Length", "0")

    cookies = RequestsCookieJar()
    stamp_cookie_jar(cookies)  # requests asked it for a Cookie header
    return prepared_without_body(method, prepared_url, headers_from_store(store), cookies)


def _merged_headers(
    session_headers: CaseInsensitiveDict[Any], headers: Any, request_id_header: str | None
) -> OrderedDict[str, Any] | None:
    """The store of the prepared request's headers: the session's, then the request's (and a new request
    id when *request_id_header* is named by neither), None values removed, every header valid; None when
    requests' own steps must decide (they may raise)."""
    key = tuple(header_store(session_headers).values())
    try:
        base = _session_headers[key]
    except KeyError:
        base = _validated(key)
        if len(_session_headers) >= _MAX_ENTRIES:
            _session_headers.clear()
        _session_headers[key] = base
    except TypeError:  # an unhashable value: requests will refuse it
        return None
    if base is None:
        return None
    store = base.copy()
    id_lower = None if request_id_header is None else request_id_header.lower()
    if headers:
        if type(headers) is not dict:
            return None
        if not _add_request_headers(store, headers):
            return None
        if id_lower is not None and any(type(k) is str and k.lower() == id_lower for k in headers):
            id_lower = None  # the request names the header: with_request_id leaves it as it is
    if id_lower is not None and id_lower not in base:
        assert request_id_header is not None
        request_id = new_request_id()
        if not (HEADER_NAME_STR.match(request_id_header) and HEADER_VALUE_STR.match(request_id)):
            return None  # requests refuses it: its steps raise
        store[id_lower] = (request_id_header, request_id)
    return store


def _add_request_headers(store: OrderedDict[str, Any], headers: dict[Any, Any]) -> bool:
    """Merge the request's *headers* into *store* as requests does; False when its steps must decide."""
    removed = False
    for name, value in headers.items():
        if type(name) is not str:
            return False
        if value is None:
            removed = True  # set now, removed after the merge: a later same-named header takes its place
        elif not (type(value) is str and HEADER_NAME_STR.match(name) and HEADER_VALUE_STR.match(value)):
            return False  # bytes, or a header requests refuses: its steps decide
        store[name.lower()] = (name, value)
    if removed:
        for lower in [lower for lower, (_, value) in store.items() if value is None]:
            del store[lower]
    return True


def _validated(pairs: tuple[Any, ...]) -> OrderedDict[str, tuple[str, Any]] | None:
    store: OrderedDict[str, tuple[str, Any]] = OrderedDict()
    for name, value in pairs:
        # A None value is dropped after the request's headers are merged in, where a request header of the
        # same name takes its place: requests' steps decide. So they do for bytes and refused headers.
        if not (type(name) is str and type(value) is str):
            return None
        if not (HEADER_NAME_STR.match(name) and HEADER_VALUE_STR.match(value)):
            return None
        store[name.lower()] = (name, value)
    return store
