"""``install()`` and ``uninstall()``: the framework for every requests session of the process.

Code that never builds a session of ours (module-level ``requests.get``, an API client that makes its own
``requests.Session``) is reached the way OpenTelemetry's ``RequestsInstrumentor`` reaches it: by wrapping
methods of requests' own ``Session`` class, which every session of the process shares, whenever it was
made and whatever subclass it is. ``requests.Session`` itself is never rebound, so requests-cache's
``install_cache()`` (which rebinds it to a subclass whose ``send`` calls ``super().send()`` on a cache
miss) composes with it in either order.

A call of a plain session to an origin of a registered integration (or to any origin with
``all_origins=True``) runs as a call of that integration's :class:`~resilient_session.ResilientSession`
would: its default timeout, retry policy, deadline, circuit breaker, retry budget, bulkhead, degrade
policy (not when a requests-cache ``CacheMixin`` fronts the caller's session), typed errors, logs and
spans. Everything else is the caller's session: its adapters, headers, cookies, auth, hooks, proxies and
redirects; nothing is added to the request.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import BaseAdapter

from . import _degrade, _fork, registry
from ._call import current_call, enter, leave
from ._compat.requests import OriginalSession
from .adapter import MountedAdapter, ResilientAdapter
from .errors import status_error_for
from .observe.observer import begin_call, end_call
from .session import ResilientSession, send_again_if_broken

__all__ = ["install", "uninstall"]

log = logging.getLogger("resilient_session")

Send = Callable[..., requests.Response]
GetAdapter = Callable[[Any, str], BaseAdapter]

# The session whose call a CallState is, in its ``extras`` (its owner is the integration's session).
_CALLER = "installed_caller"


class _Switch:
    """What :func:`install` changed, and the sessions whose policies installed calls use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.on = False
        self.all_origins = False
        #: Method name -> (the function found on the class, ours), while ours is in the class's chain.
        self.patched: dict[str, tuple[Any, Any]] = {}
        #: Method name -> (the function found, ours) of the last install(), for the next one to reuse.
        self.made: dict[str, tuple[Any, Any]] = {}
        #: Integration name -> (the integration, its session); a re-registered integration gets a new one.
        self.sessions: dict[str, tuple[registry.Integration, ResilientSession]] = {}
        self.default: ResilientSession | None = None
        self.tracked = False

    def _after_fork_in_child(self) -> None:
        # Another thread of the parent may have held the lock: the child's own is new and free.
        self.lock = threading.Lock()


_SWITCH = _Switch()


def install(*, all_origins: bool = False) -> None:
    """Give every ``requests.Session`` of the process the framework for the registered integrations.

    From now on, a call of any requests session (module-level ``requests.get``, sessions made before this
    call, sessions API clients make and subclass) to an origin of an integration registered in
    :mod:`resilient_session.registry` runs with that integration's timeout, retries, deadline, circuit
    breaker and retry budget (shared with its :class:`~resilient_session.ResilientSession` instances),
    and fails with the typed errors (still requests' exceptions). A status answer after the retries is
    returned, as requests returns it, unless the integration sets ``raise_for_status``. The session's own
    adapters, headers, cookies, auth, hooks, proxies and redirects are used as before.

    :param all_origins: Also every other origin, with the defaults of ``ResilientSession()`` (state shared
        per origin). Calling ``install()`` again sets this anew.

    A :class:`~resilient_session.ResilientSession` is left as it is: it already has the framework. Does not
    depend on import order, composes with ``requests_cache.install_cache()`` in either order, is
    thread-safe, and calling it twice is harmless. :func:`uninstall` undoes it.
    """
    switch = _SWITCH
    with switch.lock:
        if not switch.tracked:
            switch.tracked = True
            _fork.track(switch)
        switch.all_origins = bool(all_origins)
        for name, make in _WRAPPERS.items():
            found = OriginalSession.__dict__[name]
            patched = switch.patched.get(name)
            if patched is not None and _reaches(found, patched[1]):
                continue  # ours is still there (maybe wrapped by another library): switched on below
            made = switch.made.get(name)
            # The same wrapper as last time around the same function: install() after uninstall() puts
            # back the very object the class had.
            ours = made[1] if made is not None and made[0] is found else make(found)
            switch.made[name] = (found, ours)
            switch.patched[name] = (found, ours)
            setattr(OriginalSession, name, ours)
        switch.on = True


def uninstall() -> None:
    """Undo :func:`install`: requests' ``Session`` gets back the very functions it had; calling it twice,
    or without ``install()``, is harmless.

    If another library wrapped the same methods since ``install()`` (OpenTelemetry's instrumentor, say),
    its wrappers stay, around ours, which from now on pass every call straight through.
    """
    switch = _SWITCH
    with switch.lock:
        switch.on = switch.all_origins = False
        for name, (found, ours) in list(switch.patched.items()):
            if OriginalSession.__dict__.get(name) is ours:
                setattr(OriginalSession, name, found)
                del switch.patched[name]
            else:
                log.debug("uninstall(): requests' Session.%s was wrapped again since install(); kept", name)
        switch.sessions.clear()
        switch.default = None


def _reaches(function: Any, ours: Any) -> bool:
    """True when *function* is *ours* or a wrapper of it that says so (``functools.wraps``, wrapt)."""
    for _ in range(16):
        if function is ours:
            return True
        function = getattr(function, "__wrapped__", None)
        if function is None:
            return False
    return False


def state() -> tuple[bool, bool]:
    """(installed, all_origins) now, for the pytest plugin to put back."""
    return _SWITCH.on, _SWITCH.all_origins


# -- the wrappers ----------------------------------------------------------------------------------


def _wrap_send(send: Send) -> Send:
    @functools.wraps(send)
    def wrapper(self: Any, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if not _SWITCH.on or isinstance(self, ResilientSession):
            return send(self, request, **kwargs)
        return _send(self, send, request, kwargs)

    return wrapper


def _wrap_get_adapter(get_adapter: GetAdapter) -> GetAdapter:
    @functools.wraps(get_adapter)
    def wrapper(self: Any, url: str) -> BaseAdapter:
        adapter = get_adapter(self, url)
        call = current_call()
        if call is None or not call.sending or call.extras.get(_CALLER) is not self:
            return adapter
        call.sending = False  # requests.Session.send looks the adapter up once, first thing
        return adapter if isinstance(adapter, ResilientAdapter) else MountedAdapter(adapter)

    return wrapper


_WRAPPERS: dict[str, Callable[[Any], Any]] = {"send": _wrap_send, "get_adapter": _wrap_get_adapter}


def _send(
    session: Any, send: Send, request: requests.PreparedRequest, kwargs: dict[str, Any]
) -> requests.Response:
    """One send of a plain *session* while installed."""
    outer = current_call()
    own_send = functools.partial(send, session)
    if outer is not None and outer.extras.get(_CALLER) is session:
        # A redirect hop or a hook's re-send: part of the call already in progress.
        outer.sending = True
        return send_again_if_broken(outer, own_send, request, kwargs)
    if outer is not None and outer.owner is None:
        # A request our own code makes on behalf of a call in progress (an OAuth2 token request, see
        # _call.nested) runs as that code set it up, under the call's deadline.
        return own_send(request, **kwargs)
    protector = _protector(request.url)
    if protector is None:
        if outer is None or _is_ours(session, request.url):
            return own_send(request, **kwargs)
        # Another session's call is in progress (this send is made from its hook): an adapter of requests
        # never saw its deadline, retries or policies, and still does not.
        token = enter(None)
        try:
            return own_send(request, **kwargs)
        finally:
            leave(token)
    call = protector._begin(request.method, request.url, protector.deadline)
    call.retry_standin = protector.retry
    call.extras[_CALLER] = session
    token = enter(call)
    call.sent = True
    observer = call.observer = begin_call(_Observed(protector), call, request)
    call.sending = True
    # The integration's degrade policy answers in place of a failure, unless a requests-cache CacheMixin
    # fronts the caller's session: it would store the degraded answer as a fresh one.
    degrades = protector.degrade is not None and not _degrade.fronted(session)
    try:
        try:
            response = send_again_if_broken(call, own_send, request, kwargs)
        except Exception as exc:
            stand_in = _degrade.instead_of_error(protector, call, request, exc, kwargs) if degrades else None
            if stand_in is None:
                raise
            response = stand_in
        else:
            if degrades:
                response = _degrade.after_response(protector, call, request, response, kwargs)
    except BaseException as exc:
        if observer is not None:
            end_call(observer, call, error=exc)
        raise
    finally:
        leave(token)
        call.unwatch()
    if observer is not None:
        end_call(observer, call, response=response)
    if protector.raise_for_status:
        error = status_error_for(response, attempts=call.attempts, elapsed=call.elapsed())
        if error is not None:
            raise error
    return response


def _is_ours(session: Any, url: str | None) -> bool:
    """True when *session* sends *url* through a :class:`ResilientAdapter`, which reads the call in
    progress whoever started it."""
    try:
        return isinstance(session.get_adapter(url or ""), ResilientAdapter)
    except requests.RequestException:  # no adapter: requests' send raises it, as always
        return False


def _protector(url: str | None) -> ResilientSession | None:
    """The session whose policies a call to *url* runs with, or ``None``: the call is left alone."""
    if not url:
        return None
    integration = registry.lookup(url)
    switch = _SWITCH
    if integration is not None:
        entry = switch.sessions.get(integration.name)
        if entry is None or entry[0] is not integration:
            # Two threads racing here build two sessions of the same integration: they share its
            # policies (and their state), so either is right.
            entry = (integration, integration.session())
            switch.sessions[integration.name] = entry
        return entry[1]
    if switch.all_origins and url[:8].lower().startswith(("http://", "https://")):
        default = switch.default
        if default is None:
            default = switch.default = ResilientSession()  # state per origin, in the process-wide store
        return default
    return None


class _Observed:
    """What the call's logs, events and spans read of *session*; no request-id header is added to a
    request the caller's session prepared (one bound with ``bind_request_id`` is still logged)."""

    __slots__ = ("events", "integration", "request_id_header", "tracing")

    def __init__(self, session: ResilientSession) -> None:
        self.events = session.events
        self.integration = session.integration
        self.tracing = session.tracing
        self.request_id_header = None
