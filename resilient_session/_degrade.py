"""How a session applies its :class:`~resilient_session.policies.Degrade` policy to one call.

The session calls :func:`instead_of_error` when its first send of a call raised and :func:`after_response`
when it answered; both return at once when the session has no policy. Only ``GET`` and ``HEAD`` are
kept or answered. The store is consulted here, after the adapter refused or failed, so an open circuit
still opens no socket, and a ``requests_cache.CacheMixin`` in front of the session still answers first
from its own cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import requests
from requests import exceptions as rexc

from ._call import CallState
from ._compat.requests import mark_consumed
from ._redact import is_secret_name
from .errors import BulkheadFullError, CircuitOpenError, DeadlineExceededError, RetryExhaustedError
from .normalization.view import DEFAULT_NORMALIZER, with_normalized
from .observe.observer import end_call
from .policies.degrade import DEGRADED_HEADER, Degrade, Degraded
from .policies.routes import _path
from .stores.responses import ResponseStore, credential_names, request_key

if TYPE_CHECKING:
    from .session import ResilientSession

__all__ = ["after_response", "classify", "defer_report", "instead_of_error", "may_answer"]

log = logging.getLogger("resilient_session")

_SAFE = frozenset({"GET", "HEAD"})
_default_store: ResponseStore | None = None
_default_lock = threading.Lock()


def default_store() -> ResponseStore:
    """The store of every policy given none: one SQLite file in the user's cache directory."""
    global _default_store
    if _default_store is None:
        with _default_lock:
            if _default_store is None:
                _default_store = ResponseStore.sqlite()
    return _default_store


def classify(error: BaseException) -> str | None:
    """The failure *error* is (one of :data:`~resilient_session.policies.degrade.FAILURES`), or
    ``None`` when it is no failure to reach the upstream (a bad URL, a body over the size limit ...)."""
    declared = getattr(type(error), "degrade_reason", None)  # errors of other policies (a quota) say it
    if isinstance(declared, str):
        return declared
    if isinstance(error, CircuitOpenError):
        return "circuit_open"
    if isinstance(error, BulkheadFullError):
        return "bulkhead_full"
    if isinstance(error, DeadlineExceededError):
        return "deadline"
    if isinstance(error, RetryExhaustedError):
        return "status"
    if isinstance(error, rexc.Timeout):
        return "timeout"
    if isinstance(error, (rexc.ConnectionError, rexc.ChunkedEncodingError)):
        return "connection"
    return None


def policy_for(session: Any, method: str | None, url: str | None) -> Degrade | None:
    """The policy in force for a *method* call to *url* from *session*, or ``None``."""
    policy: Degrade | None = getattr(session, "degrade", None)
    if policy is None or (method or "GET").upper() not in _SAFE:
        return None
    return policy.for_path(_path(url or ""))


def may_answer(session: Any, method: str | bytes, url: str, allow_stale: bool) -> bool:
    """True when a call could be answered by the store or a fallback, so an open circuit must be met
    after the request is prepared (its credentials are part of the key), not before."""
    if not allow_stale:
        return False
    name = method.decode() if isinstance(method, bytes) else method
    return policy_for(session, name, url) is not None


def instead_of_error(
    session: ResilientSession,
    call: CallState,
    request: requests.PreparedRequest,
    error: BaseException,
    send_kwargs: Mapping[str, Any],
) -> requests.Response | None:
    """A degraded answer in place of *error*, or ``None``: the call raises it."""
    if call.extras.get("allow_stale") is False:
        return None
    policy = policy_for(session, request.method, request.url)
    if policy is None:
        return None
    reason = classify(error)
    if reason is None or reason not in policy.on:
        return None
    call.extras["cert"] = send_kwargs.get("cert")  # the client certificate is part of the identity
    if fronted(session):
        # A CacheMixin in front would store the answer as fresh: answered in request(), past it.
        call.extras["degrade_pending"] = (request, policy, reason, error, None)
        return None
    return _answer(session, call, request, policy, reason, error=error)


def fronted(session: Any) -> bool:
    """True when a requests-cache ``CacheMixin`` sits in front of *session*'s ``send``."""
    return hasattr(getattr(session, "cache", None), "get_response")


def through_cache(
    session: ResilientSession,
    call: CallState,
    request: Callable[..., requests.Response],
    *args: Any,
    **kwargs: Any,
) -> requests.Response:
    """``request(*args, **kwargs)`` (requests' ``Session.request``) for a session a ``CacheMixin`` fronts:
    a failure the policy answers is answered here, after the CacheMixin let it through unstored, and the
    call is reported (event, log line, span) with the answer it finally got."""
    call.extras["through_cache"] = True
    try:
        response = request(*args, **kwargs)
    except Exception:
        pending = call.extras.pop("degrade_pending", None)
        if pending is None:
            raise
        prepared, policy, reason, error, status = pending
        answer = _answer(session, call, prepared, policy, reason, error=error, status=status)
        if answer is None:
            _report_deferred(call)
            raise
        _report_deferred(call, answer)
        return answer
    pending = call.extras.pop("degrade_pending", None)
    if pending is not None and response.status_code == pending[4]:
        prepared, policy, reason, error, status = pending
        answer = _answer(session, call, prepared, policy, reason, error=error, status=status)
        if answer is not None:
            response.close()
            _report_deferred(call, answer)
            return answer
    _report_deferred(call)
    return response


def defer_report(
    call: CallState,
    observer: Any,
    response: requests.Response | None = None,
    error: BaseException | None = None,
) -> bool:
    """True when the end of *call* is reported later, by :func:`through_cache`: the send's outcome is a
    failure the policy may still answer once the ``CacheMixin`` in front let it through."""
    if not call.extras.get("through_cache") or call.extras.get("degrade_pending") is None:
        return False
    call.extras["degrade_report"] = (observer, response, error)
    return True


def _report_deferred(call: CallState, answer: requests.Response | None = None) -> None:
    """Report the end of *call* deferred by :func:`defer_report`: with *answer* in place of the failure,
    or, without one, the send's own outcome."""
    deferred = call.extras.pop("degrade_report", None)
    if deferred is None:
        return
    observer, response, error = deferred
    if answer is not None:
        response, error = answer, None
    end_call(observer, call, response=response, error=error)


def after_response(
    session: ResilientSession,
    call: CallState,
    request: requests.PreparedRequest,
    response: requests.Response,
    send_kwargs: Mapping[str, Any],
) -> requests.Response:
    """*response*, kept in the store when it may be; or a degraded answer in place of a failure status."""
    policy = policy_for(session, request.method, request.url)
    if policy is None:
        return response
    status = response.status_code
    call.extras["cert"] = send_kwargs.get("cert")  # the client certificate is part of the identity
    if status in policy.failure_statuses:
        if "status" in policy.on and call.extras.get("allow_stale") is not False:
            if fronted(session):
                call.extras["degrade_pending"] = (request, policy, "status", None, status)
                return response
            answer = _answer(session, call, request, policy, "status", status=status)
            if answer is not None:
                response.close()
                return answer
        return response
    if status in policy.keep_statuses and not send_kwargs.get("stream"):
        _keep(call, request, response, policy)
    return response


# -- keeping ---------------------------------------------------------------------------------------


def _directives(value: str | None) -> set[str]:
    return {part.split("=", 1)[0].strip().lower() for part in (value or "").split(",") if part.strip()}


def _keep(
    call: CallState, request: requests.PreparedRequest, response: requests.Response, policy: Degrade
) -> None:
    session = call.owner
    store = policy.store or default_store()
    key, redact = request_key(
        request, extra_headers=policy.key_headers, cert=call.extras.get("cert"), secret=store._key_secret
    )
    response_cc = _directives(response.headers.get("Cache-Control"))
    request_cc = _directives(request.headers.get("Cache-Control"))
    if (
        "no-store" in response_cc
        or "no-store" in request_cc
        or response.headers.get("Vary", "").strip() == "*"
    ):
        store.delete(key)  # what was kept before is not to be served in place of this
        return
    headers, params = credential_names(request)
    if not policy.store_authorized:
        if "private" in response_cc:
            return
        if (headers or params or call.extras.get("cert")) and not response_cc & {
            "public",
            "s-maxage",
            "must-revalidate",
        }:
            return
    limit = policy.max_body
    session_limit = getattr(session, "max_response_size", None)
    if session_limit is not None:
        limit = min(limit, session_limit)
    if len(response.content) > limit:
        return
    store.put(key, response, keep_for=policy.max_stale, redact=redact)


# -- answering -------------------------------------------------------------------------------------


def _answer(
    session: ResilientSession,
    call: CallState,
    request: requests.PreparedRequest,
    policy: Degrade,
    reason: str,
    *,
    error: BaseException | None = None,
    status: int | None = None,
) -> requests.Response | None:
    store = policy.store or default_store()
    key, _ = request_key(
        request, extra_headers=policy.key_headers, cert=call.extras.get("cert"), secret=store._key_secret
    )
    cached = store._read_shared(key)
    if cached is not None:
        age = _age(cached)
        if age <= policy.max_stale and _vary_matches(cached, request):
            info = Degraded("stale", reason, age=age, error=error, status=status)
            return _mark(session, _from_cached(cached, request), info)
    try:
        value = policy.fallback_for(request)
    except Exception as exc:
        log.warning("degrade fallback failed (%s); the call raises its own error", type(exc).__name__)
        return None
    if value is None:
        return None
    info = Degraded("fallback", reason, error=error, status=status)
    return _mark(session, _from_value(value, request), info)


def _age(cached: Any) -> float:
    created = cached.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    age: float = (datetime.now(timezone.utc) - created).total_seconds()
    with contextlib.suppress(ValueError):
        age += float(cached.headers.get("Age") or 0)
    return max(0.0, age)


def _vary_matches(cached: Any, request: requests.PreparedRequest) -> bool:
    vary = cached.headers.get("Vary")
    if not vary:
        return True
    stored = cached.request.headers
    for name in (n.strip() for n in vary.split(",")):
        if not name:
            continue
        if name == "*":
            return False
        if is_secret_name(name):
            continue  # part of the key's credential identity
        if request.headers.get(name) != stored.get(name):
            return False
    return True


def _from_cached(cached: Any, request: requests.PreparedRequest) -> requests.Response:
    response = requests.Response()
    response.status_code = cached.status_code
    response.headers = requests.structures.CaseInsensitiveDict(cached.headers)
    mark_consumed(response, cached.content)
    response.encoding = cached.encoding
    response.reason = cached.reason
    response.url = request.url or cached.url
    response.request = request
    return response


def _from_value(value: Any, request: requests.PreparedRequest) -> requests.Response:
    if isinstance(value, requests.Response):
        response = value
        response.request = response.request or request
        return response
    response = requests.Response()
    response.status_code = 200
    response.reason = "OK"
    if isinstance(value, bytes):
        body = value
    elif isinstance(value, str):
        body = value.encode("utf-8")
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
    else:
        body = json.dumps(value).encode("utf-8")
        response.headers["Content-Type"] = "application/json"
    response.headers["Content-Length"] = str(len(body))
    mark_consumed(response, body if request.method != "HEAD" else b"")
    response.encoding = "utf-8"
    response.url = request.url or ""
    response.request = request
    return response


def _mark(session: Any, response: requests.Response, info: Degraded) -> requests.Response:
    response.headers[DEGRADED_HEADER] = info.header_value()
    response.degraded = info  # type: ignore[attr-defined]
    try:
        normalizer = getattr(session.get_adapter(response.url), "normalizer", None)
    except Exception:  # no adapter for the URL: the default view
        normalizer = None
    return with_normalized(response, normalizer or DEFAULT_NORMALIZER)
