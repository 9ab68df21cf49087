"""requests' ``Session.send``, without the steps that do nothing for a plain answer.

After the adapter answers, requests' ``Session.send`` hands the response to its hooks, extracts the
cookies it set into the session's jar (through ``http.cookiejar``'s mock objects and a parse of the
headers, also when there is none), and runs the redirect generator (which looks for a ``Location`` header
by catching a ``KeyError``). :func:`send` takes the same steps in the same order, and skips each one
exactly when it would change nothing:

* the hooks, when the request has no ``response`` hook;
* the cookie extraction, when the session's jar is a plain ``RequestsCookieJar`` and the response (a
  urllib3 response) has no ``Set-Cookie`` or ``Set-Cookie2`` header: the jar is stamped with the time, as
  ``CookieJar.extract_cookies`` stamps it;
* the redirect generator, when the status is not a redirect (``Response.is_redirect`` is false without a
  redirect status, whatever the headers say).

It is used only while requests' own ``Session.send`` is in place (not wrapped by an instrumentation
library or ``install()``), its code names what this mirrors (requests 2.32-2.34), the helpers it calls are
requests' own, and the session's class does not override ``resolve_redirects`` or
``get_redirect_target``; otherwise the session calls requests' method. ``tests/test_send.py`` compares both.
"""

from __future__ import annotations

import contextlib
import operator
from datetime import timedelta
from typing import Any

import requests
import requests.sessions as _sessions
from requests.cookies import RequestsCookieJar
from requests.models import REDIRECT_STATI

from ._compat.requests import OriginalSession, set_next
from ._compat.stdlib import sets_cookies, stamp_cookie_jar
from ._compat.urllib3 import original_response

__all__ = ["MIRRORS_REQUESTS", "mirrors_now", "send"]

_ORIGINAL_SEND = OriginalSession.send
# The names requests' Session.send uses (requests 2.32-2.34).
_MIRRORED_NAMES = frozenset(
    {
        "Request", "StopIteration", "ValueError", "_next", "cert", "content", "cookies", "dispatch_hook",
        "elapsed", "extract_cookies_to_jar", "get", "get_adapter", "history", "hooks", "insert",
        "isinstance", "next", "pop", "preferred_clock", "proxies", "raw", "request", "resolve_proxies",
        "resolve_redirects", "send", "setdefault", "stream", "timedelta", "trust_env", "url", "verify",
    }
)  # fmt: skip
_HELPERS = ("dispatch_hook", "extract_cookies_to_jar", "resolve_proxies", "preferred_clock", "timedelta")
_helpers_now = operator.attrgetter(*_HELPERS)
_HELPERS_AT_IMPORT = _helpers_now(_sessions)
# Only a redirect reaches the rebuild_* methods: these two decide whether an answer is one.
_SESSION_METHODS = ("resolve_redirects", "get_redirect_target")
_methods_of = operator.attrgetter(*_SESSION_METHODS)
_REQUESTS_METHODS = _methods_of(OriginalSession)
_IS_REDIRECT = requests.Response.is_redirect


def _mirrors_requests() -> bool:
    code = getattr(_ORIGINAL_SEND, "__code__", None)
    return code is not None and set(code.co_names) - {"cast", "_is_prepared"} == _MIRRORED_NAMES


MIRRORS_REQUESTS = _mirrors_requests()


def mirrors_now(session: requests.Session) -> bool:
    """True when :func:`send` answers for *session* exactly as requests' ``Session.send`` would now."""
    return (
        MIRRORS_REQUESTS
        and OriginalSession.send is _ORIGINAL_SEND
        and _helpers_now(_sessions) == _HELPERS_AT_IMPORT
        and _methods_of(type(session)) == _REQUESTS_METHODS
    )


def send(session: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
    """What ``requests.Session.send(session, request, **kwargs)`` returns (see the module docstring)."""
    kwargs.setdefault("stream", session.stream)
    kwargs.setdefault("verify", session.verify)
    kwargs.setdefault("cert", session.cert)
    if "proxies" not in kwargs:
        kwargs["proxies"] = _sessions.resolve_proxies(request, session.proxies, session.trust_env)  # type: ignore[attr-defined]
    if isinstance(request, requests.Request):  # type: ignore[unreachable]
        raise ValueError("You can only send PreparedRequests.")
    allow_redirects = kwargs.pop("allow_redirects", True)
    stream = kwargs.get("stream")
    hooks = request.hooks
    adapter = session.get_adapter(url=request.url)  # type: ignore[arg-type]
    start = _sessions.preferred_clock()
    r = adapter.send(request, **kwargs)
    r.elapsed = timedelta(seconds=_sessions.preferred_clock() - start)
    if hooks and hooks.get("response"):  # dispatch_hook() returns r unchanged without one
        r = _sessions.dispatch_hook("response", hooks, r, **kwargs)  # type: ignore[no-untyped-call]
    if r.history:
        for resp in r.history:
            _sessions.extract_cookies_to_jar(session.cookies, resp.request, resp.raw)  # type: ignore[no-untyped-call]
    _extract_cookies(session.cookies, request, r.raw)
    plain = getattr(type(r), "is_redirect", None) is _IS_REDIRECT and r.status_code not in REDIRECT_STATI
    if allow_redirects:
        history = [] if plain else list(session.resolve_redirects(r, request, **kwargs))
    else:
        history = []
    if history:
        history.insert(0, r)
        r = history.pop()
        r.history = history
    if not allow_redirects and not plain:
        with contextlib.suppress(StopIteration):
            set_next(r, next(session.resolve_redirects(r, request, yield_requests=True, **kwargs)))
    if not stream:
        r.content  # noqa: B018 - as requests: reading caches the body
    return r


def _extract_cookies(jar: Any, request: requests.PreparedRequest, raw: Any) -> None:
    # extract_cookies_to_jar(jar, request, raw), skipped where it would only stamp the jar's clock: it
    # reads the headers http.client parsed (which a hook may have changed on raw.headers, not there).
    if type(jar) is RequestsCookieJar:
        origin = original_response(raw)
        if not origin:
            return  # extract_cookies_to_jar returns at once too
        if sets_cookies(getattr(origin, "msg", None)) is False:
            stamp_cookie_jar(jar)
            return
    _sessions.extract_cookies_to_jar(jar, request, raw)  # type: ignore[no-untyped-call]
