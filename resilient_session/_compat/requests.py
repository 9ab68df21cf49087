"""What the package needs from requests beyond its documented API."""

from __future__ import annotations

import datetime
import netrc as netrc_module
from collections import OrderedDict
from collections.abc import Callable
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any

import requests
import requests.cookies as _cookies
import requests.hooks as _hooks
import requests.sessions
import requests.sessions as _sessions
import requests.utils as _utils
from requests.structures import CaseInsensitiveDict

__all__ = [
    "HEADER_NAME_STR",
    "HEADER_VALUE_STR",
    "NETRC_FILES",
    "OriginalSession",
    "body_position",
    "body_unread",
    "cached_content",
    "content_consumed",
    "environ_proxies",
    "environment_helpers_replaced",
    "header_store",
    "headers_from_store",
    "mark_consumed",
    "merge_cookies",
    "merge_hooks",
    "merge_setting",
    "netrc_auth",
    "netrc_helpers_replaced",
    "original_session_class",
    "plain_headers",
    "prepare_helpers_replaced",
    "prepare_request_names",
    "prepared_without_body",
    "request_cookie_jar",
    "response_from_parts",
    "set_next",
]


def original_session_class() -> type[requests.sessions.Session]:
    """requests' own ``Session`` class, even after a library replaced ``requests.Session``.

    ``requests_cache.install_cache()`` assigns its own subclass to ``requests.Session`` and
    ``requests.sessions.Session``; a class defined after that must not inherit the cache by accident, and a
    patch meant for every session must go on the class every session shares.
    """
    for cls in requests.sessions.Session.__mro__:
        if cls.__module__ == "requests.sessions" and cls.__name__ == "Session":
            return cls
    raise RuntimeError("requests.sessions.Session is not requests' Session class")  # pragma: no cover


if TYPE_CHECKING:
    from requests.sessions import Session as OriginalSession
else:
    #: requests' own ``Session`` class, resolved when this module was imported (see above).
    OriginalSession = original_session_class()


# -- Prepared requests and responses: attributes requests keeps for itself -------------------------------

_UNSET: Any = object()


def body_position(request: requests.PreparedRequest) -> object:
    """Where a file-like body started, as requests recorded it at prepare time (``_body_position``).

    Stands in for the question ``requests.utils.rewind_body`` answers by raising: whether the body can be
    sent again. An ``int`` means yes; ``None`` (no stream) or requests' marker object (``tell()`` failed)
    means no.
    """
    return getattr(request, "_body_position", None)


def request_cookie_jar(request: requests.PreparedRequest) -> CookieJar | None:
    """The jar a prepared request's cookies came from (``_cookies``), None before ``prepare_cookies``.

    Stands in for what ``Session.resolve_redirects`` does with it: take the cookies a response set and
    send them with the next request.
    """
    jar: CookieJar | None = getattr(request, "_cookies", None)
    return jar


def content_consumed(response: requests.Response) -> bool:
    """True once the body was read or given up (``_content_consumed``): ``response.content`` is then
    the body, or raises requests' ``RuntimeError`` when the stream was consumed without keeping it."""
    return bool(getattr(response, "_content_consumed", False))


def cached_content(response: requests.Response) -> Any:
    """The body ``response.content`` would return without reading (``_content``): ``False`` until read,
    ``None`` when there was nothing to read, else the bytes."""
    return getattr(response, "_content", False)


def body_unread(response: requests.Response) -> bool:
    """True while neither ``response.content`` nor ``iter_content`` has read the body (``_content`` is
    ``False`` and ``_content_consumed`` false): :func:`content_consumed` and :func:`cached_content` in one."""
    content: object = response._content
    return content is False and not getattr(response, "_content_consumed", False)


def mark_consumed(response: requests.Response, content: Any = _UNSET) -> None:
    """Record the body as read, as ``Response.content`` does once it has read it (``_content`` and
    ``_content_consumed``); without *content*, ``response.content`` raises as after ``iter_content``."""
    if content is not _UNSET:
        response._content = content
    response._content_consumed = True  # type: ignore[attr-defined]


# -- Undocumented helpers of requests.sessions, requests.utils and requests.cookies --------------------
# What Session.merge_environment_settings and Session.prepare_request call (requests 2.32-2.34). The
# environment memo (resilient_session._environ) calls requests' own method instead whenever one of them
# was replaced (by a test, or an application), so such a patch is honoured exactly.

#: ``requests.sessions.merge_setting``: a call's setting merged over the session's.
merge_setting: Callable[..., Any] = _sessions.merge_setting
#: ``requests.sessions.merge_hooks``: a request's hooks merged over the session's.
merge_hooks: Callable[..., Any] = _sessions.merge_hooks
#: ``requests.cookies.merge_cookies``: cookies added to a jar.
merge_cookies: Callable[..., Any] = _cookies.merge_cookies
#: ``requests.utils.NETRC_FILES``: the netrc file names requests looks for in the home directory.
NETRC_FILES: tuple[str, ...] = tuple(_utils.NETRC_FILES)

_PROXY_LOOKUPS = (
    _sessions.get_environ_proxies,
    _utils.should_bypass_proxies,
    _utils.getproxies,  # type: ignore[attr-defined]
    _utils.proxy_bypass,  # type: ignore[attr-defined]
)
_NETRC_LOOKUPS = (_sessions.get_netrc_auth, netrc_module.netrc)


def environ_proxies(url: str, no_proxy: str | None) -> dict[str, str]:
    """The proxies requests takes from the environment for *url*
    (``requests.sessions.get_environ_proxies``)."""
    proxies: dict[str, str] = _sessions.get_environ_proxies(url, no_proxy=no_proxy)
    return proxies


def netrc_auth(url: str) -> Any:
    """What requests' ``prepare_request`` takes from netrc for *url* (``requests.sessions.get_netrc_auth``),
    looked up when called, so a patch on it is honoured."""
    return _sessions.get_netrc_auth(url)


def environment_helpers_replaced() -> bool:
    """True when a helper ``Session.merge_environment_settings`` calls is not requests' own any more."""
    lookups = _PROXY_LOOKUPS
    return (
        _sessions.merge_setting is not merge_setting
        or _sessions.get_environ_proxies is not lookups[0]
        or _utils.should_bypass_proxies is not lookups[1]
        or _utils.getproxies is not lookups[2]  # type: ignore[attr-defined]
        or _utils.proxy_bypass is not lookups[3]  # type: ignore[attr-defined]
    )


def prepare_helpers_replaced() -> bool:
    """True when a helper ``Session.prepare_request`` calls (netrc aside) is not requests' own any more."""
    return _sessions.merge_setting is not merge_setting or _sessions.merge_hooks is not merge_hooks


def netrc_helpers_replaced() -> bool:
    """True when requests' netrc look-up (or the ``netrc`` module's parser) was replaced."""
    return _sessions.get_netrc_auth is not _NETRC_LOOKUPS[0] or netrc_module.netrc is not _NETRC_LOOKUPS[1]


def prepare_request_names() -> frozenset[str] | None:
    """The global and attribute names ``Session.prepare_request``'s code uses, or None when it has no
    Python code: how the memo notices that requests changed the method it mirrors."""
    code = getattr(OriginalSession.prepare_request, "__code__", None)
    return None if code is None else frozenset(code.co_names)


# -- Header validation ---------------------------------------------------------------------------------

#: The patterns ``requests.utils.check_header_validity`` matches a ``str`` header's name and value against
#: (``_HEADER_VALIDATORS_STR``): the same check, in C, without two Python calls per header.
HEADER_NAME_STR, HEADER_VALUE_STR = _utils._HEADER_VALIDATORS_STR  # type: ignore[attr-defined]


# -- CaseInsensitiveDict's storage ---------------------------------------------------------------------


def header_store(headers: CaseInsensitiveDict[Any]) -> dict[str, tuple[Any, Any]]:
    """The mapping behind a ``CaseInsensitiveDict`` (``_store``: lower-cased key -> (key as set, value)).

    Stands in for ``list(headers.items())``, ``headers.lower_items()`` and a copy of the dict, each of which
    runs a Python generator per header: read from here, a session's headers compare with a remembered copy
    and a prepared request's headers are built in C.
    """
    store: dict[str, tuple[Any, Any]] = headers._store  # type: ignore[attr-defined]
    return store


def plain_headers(headers: Any) -> Any:
    """A ``CaseInsensitiveDict``'s pairs as a plain ``dict`` in the same order (its ``_store``'s values);
    anything else as it is.

    Stands in for handing urllib3 the ``CaseInsensitiveDict`` itself: urllib3 iterates the headers twice
    per request (their names, then the pairs), which on a ``CaseInsensitiveDict`` runs a Python generator
    step and a look-up per header. A ``dict`` of the same pairs sends the same bytes.
    """
    if type(headers) is not CaseInsensitiveDict:
        return headers
    return dict(headers._store.values())  # type: ignore[attr-defined]


def headers_from_store(store: dict[str, tuple[Any, Any]]) -> CaseInsensitiveDict[Any]:
    """A new ``CaseInsensitiveDict`` holding a copy of *store* (as returned by :func:`header_store`): what
    ``CaseInsensitiveDict(pairs)`` builds from the same pairs, without setting them one by one."""
    headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict.__new__(CaseInsensitiveDict)
    headers._store = OrderedDict(store)  # type: ignore[attr-defined]
    return headers


def prepared_without_body(
    method: str, url: str, headers: CaseInsensitiveDict[Any], cookies: CookieJar
) -> requests.PreparedRequest:
    """The ``PreparedRequest`` requests' ``prepare()`` leaves for a request without body, auth or hooks.

    Stands in for ``PreparedRequest()`` followed by ``prepare()``: the attributes ``__init__`` sets, in its
    order, holding what the ``prepare_*`` steps put there (``_cookies``: the jar the Cookie header came
    from; ``_body_position``: no stream body). ``resilient_session._prepare`` says when this applies.
    """
    prepared = requests.PreparedRequest.__new__(requests.PreparedRequest)
    # One by one, as __init__ sets them: that keeps CPython's compact instance layout.
    prepared.method = method
    prepared.url = url
    prepared.headers = headers
    prepared._cookies = cookies  # type: ignore[attr-defined]
    prepared.body = None
    prepared.hooks = {event: [] for event in _hooks.HOOKS}
    prepared._body_position = None  # type: ignore[attr-defined]
    return prepared


def set_next(response: requests.Response, request: Any) -> None:
    """Store the request ``response.next`` returns (``_next``), as ``Session.send`` does when redirects
    are not followed."""
    response._next = request  # type: ignore[attr-defined]


def response_from_parts(
    cls: type[requests.Response],
    status: Any,
    headers: CaseInsensitiveDict[Any],
    encoding: str | None,
    raw: Any,
    url: Any,
    cookies: CookieJar,
    request: requests.PreparedRequest,
    connection: Any,
) -> requests.Response:
    """The ``Response`` requests' ``HTTPAdapter.build_response`` returns, from the values it computes, as an
    instance of *cls* (``requests.Response`` or a subclass that adds no state).

    Stands in for ``Response()`` and the assignments that follow it: the attributes ``__init__`` sets, in
    its order (``_content``, ``_content_consumed``, ``_next``: body not read, no next request), then the
    two ``build_response`` adds. Set one by one, as ``__init__`` does, which keeps CPython's compact
    instance layout. ``resilient_session._response`` says when this applies.
    """
    response = cls.__new__(cls)
    response._content = False  # type: ignore[assignment]
    response._content_consumed = False  # type: ignore[attr-defined]
    response._next = None  # type: ignore[attr-defined]
    response.status_code = status
    response.headers = headers
    response.raw = raw
    response.url = url
    response.encoding = encoding
    response.history = []
    response.reason = raw.reason
    response.cookies = cookies  # type: ignore[assignment]
    response.elapsed = _NO_TIME
    response.request = request
    response.connection = connection
    return response


_NO_TIME = datetime.timedelta(0)  # immutable: one for every response, as equal as a new one
