"""Flask integration: configured integrations, problem+json errors, a health blueprint and request ids.

::

    from flask import Flask
    from resilient_session.contrib.flask import Integrations

    app = Flask(__name__)
    app.config["RESILIENT_INTEGRATIONS"] = "integrations.toml"
    integrations = Integrations(app, error_handlers=True)
    app.register_blueprint(integrations.health_blueprint(), url_prefix="/integrations")

    @app.get("/invoices/<id>")
    def invoice(id):
        return integrations["billing"].get(f"/invoices/{id}").json()

Configuration keys read from ``app.config``:

``RESILIENT_INTEGRATIONS`` (required)
    The integrations file: a path, or the parsed mapping (``{"integrations": {...}}``).
``RESILIENT_REQUEST_ID_HEADER``
    The incoming header whose value is sent with every integration call made while handling the request,
    and echoed on the response. Default ``"X-Request-ID"``; ``None`` turns propagation off.
``RESILIENT_EXPOSE_UPSTREAM_DETAILS``
    ``True`` adds an ``upstream`` member (redacted URL, status, message, start of the body) to problem
    responses. Default ``False``: for internal callers only.
``RESILIENT_PROBLEM_TYPE_BASE``
    Prefix of the problem ``type`` URIs. Default ``"urn:resilient-session:problem:"``.

Requires the ``flask`` extra. The whole guide is ``docs/flask.md``.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import flask
import requests
from flask import Blueprint, Flask, current_app, g, has_app_context, has_request_context, request

from ..._compat.requests import content_consumed
from ..._hosts import host_key
from ..._numbers import MAX_WAIT, clamp
from ..._redact import redact_log_text, redact_text
from ...config.load import Source
from ...config.sessions import load_integrations
from ...errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BulkheadFullError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    IncompleteBodyError,
    MalformedResponseError,
    RateLimitedError,
    RetryExhaustedError,
    ServerError,
    status_error_for,
)
from ...normalization.secrets import _request_secrets
from ...observe.events import CallEvent
from ...observe.request_id import bind_request_id
from ...policies.breaker import CircuitState
from ...session import ResilientSession

__all__ = [
    "EXTENSION_KEY",
    "AppIntegrations",
    "Integrations",
    "Problem",
    "problem_for",
    "register_error_handlers",
]

#: Where an app keeps its :class:`AppIntegrations`: ``current_app.extensions["resilient_session"]``.
EXTENSION_KEY = "resilient_session"

DEFAULT_PROBLEM_TYPE_BASE = "urn:resilient-session:problem:"

# An incoming id is used only if it looks like an id: it lands in log lines and upstream headers.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_BODY_PREVIEW = 1024
_CALLS = "_resilient_session_calls"
_RESPONSES = "_resilient_session_responses"
_RESPONSES_KEPT = 16
_MAX_SEEN_HOSTS = 32
_MAX_SEEN_ROUTES = 64


# -- the sessions of one app --------------------------------------------------------------------------


@dataclass(frozen=True)
class _LastError:
    at: float
    kind: str


class AppIntegrations(Mapping[str, ResilientSession]):
    """The sessions of one app, by integration name: ``current_app.extensions["resilient_session"]``.

    Built once by :meth:`Integrations.init_app` and shared by every request thread. It also remembers,
    per integration, the hosts called and the last failure (an exception or a 5xx answer), for
    :meth:`health`.
    """

    def __init__(self, sessions: Mapping[str, ResilientSession]) -> None:
        self._sessions = dict(sessions)
        self._lock = threading.Lock()
        self._hosts: dict[str, set[str]] = {}
        self._routes: dict[str, set[str]] = {}  # route groups' circuits each integration has called
        self._last_error: dict[str, _LastError] = {}
        self._closed = False
        for name, session in self._sessions.items():
            self._hosts[name] = {host_key(session.base_url)} if session.base_url else set()
            self._routes[name] = set()
            observe = self._observer(name)
            session.events.on_response(observe)
            session.events.on_error(observe)

    # -- Mapping ---------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> ResilientSession:
        try:
            return self._sessions[name]
        except KeyError:
            known = ", ".join(sorted(self._sessions)) or "none"
            raise KeyError(f"no integration {name!r} (defined: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {sorted(self._sessions)}{' closed' if self._closed else ''}>"

    # One object per app: identity, not contents, makes two equal (and keeps it hashable).
    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every session (their connection pools). Idempotent; also run at interpreter exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        for session in self._sessions.values():
            session.close()

    # -- what the sessions saw -------------------------------------------------------------------

    def _observer(self, name: str) -> Any:
        def observe(event: CallEvent) -> None:
            error = event.error
            if error is not None:
                # A refusal by our own breaker or bulkhead is not news about the upstream.
                if isinstance(error, (CircuitOpenError, BulkheadFullError)):
                    return
                kind = type(error).__name__
            elif event.status is not None and event.status >= 500:
                kind = f"status {event.status}"
            else:
                kind = ""
            if has_request_context():
                # Which session made which call in this request: names the integration of an error
                # exactly, even when two integrations share a host.
                g.setdefault(_CALLS, {})[event.url] = name
                if event.response is not None:
                    # The last few responses of this request, so that a ``response.json()`` that fails
                    # in the view (its error carries only the body) can be traced to its integration.
                    responses = g.get(_RESPONSES)
                    if responses is None:
                        responses = g.setdefault(_RESPONSES, deque(maxlen=_RESPONSES_KEPT))
                    responses.append((name, event.response))
            host = host_key(event.url) if event.url else None
            session = self._sessions[name]
            breaker = session.breaker
            route = breaker.route_key_for(event.url, session.base_url) if breaker and event.url else None
            with self._lock:
                hosts = self._hosts[name]
                if host and host not in hosts and len(hosts) < _MAX_SEEN_HOSTS:
                    hosts.add(host)
                routes = self._routes[name]
                if route and route not in routes and len(routes) < _MAX_SEEN_ROUTES:
                    routes.add(route)
                if kind:
                    self._last_error[name] = _LastError(time.time(), kind)

        return observe

    def integration_for(self, url: str | None) -> str | None:
        """The integration whose ``base_url`` *url* falls under (the longest match), or ``None``."""
        if not url:
            return None
        try:
            host, path = host_key(url), urlsplit(url).path
        except ValueError:
            return None
        best, best_length = None, -1
        for name, session in self._sessions.items():
            base = session.base_url
            if not base or host_key(base) != host:
                continue
            base_path = urlsplit(base).path.rstrip("/")
            if (path == base_path or path.startswith(base_path + "/")) and len(base_path) > best_length:
                best, best_length = name, len(base_path)
        return best

    # -- health ----------------------------------------------------------------------------------

    def health(self) -> tuple[dict[str, Any], bool]:
        """The health report, and False when a circuit is open (or a shared store cannot be read).

        Passive: reads breaker and budget state, never calls an upstream.
        """
        report: dict[str, Any] = {}
        for name, session in self._sessions.items():
            report[name] = self._integration_health(name, session)
        statuses = {item["status"] for item in report.values()}
        if statuses & {"unavailable", "unknown"}:
            overall = "unavailable"
        elif "degraded" in statuses:
            overall = "degraded"
        else:
            overall = "ok"
        return {"status": overall, "integrations": report}, overall != "unavailable"

    def _integration_health(self, name: str, session: ResilientSession) -> dict[str, Any]:
        with self._lock:
            hosts = sorted(self._hosts[name])
            routes = sorted(self._routes[name])
            last = self._last_error.get(name)
        breaker, budget = session.breaker, session.budget
        circuits: dict[str, Any] = {}
        budgets: dict[str, Any] = {}
        status = "ok"
        try:
            keys = [*dict.fromkeys(breaker.key_for(h) for h in hosts), *routes] if breaker is not None else []
            for key in keys:
                snapshot = breaker.state(key)  # type: ignore[union-attr]
                circuits[key] = {
                    "state": snapshot.state.value,
                    "retry_in": round(clamp(snapshot.retry_in, 0.0, MAX_WAIT, 0.0), 3),
                    "failure_rate": round(snapshot.failure_rate, 3),
                    "consecutive_failures": snapshot.consecutive_failures,
                    "trips": snapshot.trips,
                }
                if key in routes and snapshot.state is not CircuitState.CLOSED:
                    # One route group refused: the integration's other paths still work.
                    status = "degraded" if status == "ok" else status
                elif snapshot.state is CircuitState.OPEN and snapshot.retry_in > 0:
                    status = "unavailable"
                elif snapshot.state is not CircuitState.CLOSED and status == "ok":
                    # Half-open, or open with its wait over: the next call is a probe. Reporting it as
                    # down would let a load balancer withhold the very traffic that closes it.
                    status = "degraded"
            for key in dict.fromkeys(budget.key_for(h) for h in hosts) if budget is not None else ():
                budgets[key] = {
                    "available": round(budget.available(key), 3),  # type: ignore[union-attr]
                    "capacity": budget.capacity,  # type: ignore[union-attr]
                }
        except Exception as error:  # a shared store (Redis) that cannot be reached
            status = "unknown"
            circuits = {"error": type(error).__name__}
        return {
            "status": status,
            "circuits": circuits,
            "budget": budgets,
            "last_error": None
            if last is None
            else {
                "at": datetime.fromtimestamp(last.at, timezone.utc).isoformat(timespec="milliseconds"),
                "type": last.kind,
            },
        }


# -- the extension ------------------------------------------------------------------------------------


class Integrations(Mapping[str, ResilientSession]):
    """Integration sessions for a Flask app, built once from ``app.config["RESILIENT_INTEGRATIONS"]``.

    ``Integrations(app)`` sets up *app* at once; ``Integrations()`` then :meth:`init_app` suits app
    factories, and one instance may serve several apps (lookups go to ``current_app``'s sessions).

    :param app: The app to set up now, or ``None``.
    :param error_handlers: Register :func:`register_error_handlers` on each app, so typed errors
        escaping a view become ``application/problem+json`` responses. Default ``False``.

    ``integrations["billing"]`` and ``integrations.get("billing")`` return the app's
    :class:`~resilient_session.ResilientSession` for that integration. Sessions are shared by every
    request thread and closed at interpreter exit (Flask has no app-shutdown signal); :meth:`close`
    closes them sooner. The incoming request id is sent with every call made while handling a request.
    """

    def __init__(self, app: Flask | None = None, *, error_handlers: bool = False) -> None:
        self.app = app
        self.error_handlers = error_handlers
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build *app*'s sessions from its config and install the request-id hooks.

        :raises ConfigurationError: ``RESILIENT_INTEGRATIONS`` is missing or the app is already set up.
        :raises InvalidConfigError: the integrations file is invalid or names unset environment variables.
        """
        if EXTENSION_KEY in app.extensions:
            raise ConfigurationError(f"resilient_session is already set up on app {app.name!r}")
        source: Source | None = app.config.get("RESILIENT_INTEGRATIONS")
        if source is None:
            raise ConfigurationError(
                "app.config['RESILIENT_INTEGRATIONS'] is not set: give the integrations file's path, "
                "or its parsed mapping"
            )
        app.config.setdefault("RESILIENT_REQUEST_ID_HEADER", "X-Request-ID")
        app.config.setdefault("RESILIENT_EXPOSE_UPSTREAM_DETAILS", False)
        app.config.setdefault("RESILIENT_PROBLEM_TYPE_BASE", DEFAULT_PROBLEM_TYPE_BASE)
        # Built now, before the server starts its threads: no lock on the request path, and a bad file
        # or a missing secret stops the deploy instead of the first request.
        state = AppIntegrations(load_integrations(source))
        app.extensions[EXTENSION_KEY] = state
        atexit.register(state.close)
        app.before_request(_bind_request_id)
        app.after_request(_echo_request_id)
        app.teardown_request(_unbind_request_id)
        if self.error_handlers:
            register_error_handlers(app)

    def sessions(self, app: Flask | None = None) -> AppIntegrations:
        """The sessions of *app*; by default of ``current_app``, or of the app given to the constructor."""
        if app is None:
            app = current_app._get_current_object() if has_app_context() else self.app  # type: ignore[attr-defined]
        if app is None:
            raise RuntimeError("no app: call inside an app context, or pass app=")
        state = app.extensions.get(EXTENSION_KEY)
        if not isinstance(state, AppIntegrations):
            raise RuntimeError(f"Integrations.init_app() was not called on app {app.name!r}")
        return state

    def __getitem__(self, name: str) -> ResilientSession:
        return self.sessions()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sessions())

    def __len__(self) -> int:
        return len(self.sessions())

    def close(self, app: Flask | None = None) -> None:
        """Close the sessions of *app* (default as :meth:`sessions`) now rather than at exit."""
        self.sessions(app).close()

    def health_blueprint(
        self, name: str = "resilient_integrations", url_prefix: str | None = "/integrations"
    ) -> Blueprint:
        """A blueprint serving ``GET {url_prefix}/health`` (``/integrations/health`` by default); a
        ``url_prefix`` given to ``app.register_blueprint`` replaces this one.

        The JSON report gives each integration's circuits (state per host), retry budget and last
        failure; the status is 200 unless a circuit is open (then 503). It names upstream hosts: keep
        it off the public internet.
        """
        blueprint = Blueprint(name, __name__, url_prefix=url_prefix)

        @blueprint.get("/health")
        def health() -> flask.Response:
            report, healthy = current_app.extensions[EXTENSION_KEY].health()
            response = flask.jsonify(report)
            response.status_code = 200 if healthy else 503
            response.headers["Cache-Control"] = "no-store"
            return response

        return blueprint

    def __repr__(self) -> str:
        return f"<{type(self).__name__} app={self.app.name if self.app else None!r}>"

    # Mapping would compare the sessions of current_app; an extension object is equal only to itself.
    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__


# -- request ids --------------------------------------------------------------------------------------

_REQUEST_ID = "_resilient_session_request_id"
_BINDING = "_resilient_session_request_id_binding"


def _bind_request_id() -> None:
    header = current_app.config.get("RESILIENT_REQUEST_ID_HEADER")
    if not header:
        return
    incoming = request.headers.get(header, "")
    request_id = incoming if _VALID_REQUEST_ID.match(incoming) else os.urandom(16).hex()
    setattr(g, _REQUEST_ID, request_id)
    # The binding spans two hooks rather than one block: the stack holds it open until teardown.
    binding = ExitStack()
    binding.enter_context(bind_request_id(request_id))
    setattr(g, _BINDING, binding)


def _echo_request_id(response: flask.Response) -> flask.Response:
    header = current_app.config.get("RESILIENT_REQUEST_ID_HEADER")
    request_id = g.get(_REQUEST_ID)
    if header and request_id and header not in response.headers:
        response.headers[header] = request_id
    return response


def _unbind_request_id(exc: BaseException | None) -> None:
    binding: ExitStack | None = g.pop(_BINDING, None)
    if binding is not None:
        # ValueError: torn down in another context than the one bound; the binding died with it.
        with suppress(ValueError):
            binding.close()


# -- problem details ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem for a typed error: build one with :func:`problem_for`.

    ``slug`` completes the ``type`` URI; ``retry_after`` (seconds) becomes a ``Retry-After`` header;
    ``extensions`` are extra members (``integration``, ``request_id``, ``upstream``).
    """

    status: int
    slug: str
    title: str
    detail: str
    retry_after: int | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(
        self, *, type_base: str = DEFAULT_PROBLEM_TYPE_BASE, instance: str | None = None
    ) -> dict[str, Any]:
        """The JSON object: ``type``, ``title``, ``status``, ``detail``, ``instance``, then extensions."""
        body: dict[str, Any] = {
            "type": type_base + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        body.update(self.extensions)
        return body

    def to_response(
        self, *, type_base: str = DEFAULT_PROBLEM_TYPE_BASE, instance: str | None = None
    ) -> flask.Response:
        """An ``application/problem+json`` response (with ``Retry-After`` when set)."""
        response = flask.Response(
            # The standard members first, in the RFC's order (Flask's provider would sort them).
            json.dumps(self.to_dict(type_base=type_base, instance=instance)),
            status=self.status,
            mimetype="application/problem+json",
        )
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        response.headers["Cache-Control"] = "no-store"
        return response


def problem_for(
    error: APIError,
    *,
    integration: str | None = None,
    request_id: str | None = None,
    expose_upstream_details: bool = False,
) -> Problem:
    """The problem a service should answer with when *error* escapes a view.

    Upstream timeouts (deadline included) give 504; an open circuit, a full bulkhead and an upstream 429
    give 503 (``Retry-After`` when known); every other upstream failure gives 502, including an upstream
    401/403: those are this service's credentials failing, not the caller's. A
    :class:`~resilient_session.ConfigurationError` gives 500. Nothing from the upstream (URL, body,
    message) appears unless *expose_upstream_details*.
    """
    status, slug, title, detail, retry_after = _classify(error, integration)
    extensions: dict[str, Any] = {"integration": integration, "request_id": request_id}
    if expose_upstream_details and not isinstance(error, ConfigurationError):
        extensions["upstream"] = _upstream_details(error)
    return Problem(status, slug, title, detail, retry_after, extensions)


# First match wins, so the more specific classes come first. ``{who}`` starts a sentence, ``{whom}`` not.
_KINDS: tuple[tuple[type[APIError] | tuple[type[APIError], ...], int, str, str, str], ...] = (
    (
        ConfigurationError,
        500,
        "integration-misconfigured",
        "Integration misconfigured",
        "An integration of this service is misconfigured.",
    ),
    (
        CircuitOpenError,
        503,
        "upstream-circuit-open",
        "Upstream unavailable",
        "{who} is failing; calls to it are paused.",
    ),
    (BulkheadFullError, 503, "upstream-busy", "Upstream busy", "Too many calls to {whom} are in progress."),
    (
        DeadlineExceededError,
        504,
        "upstream-timeout",
        "Upstream timeout",
        "{who} did not answer within the deadline.",
    ),
    (APITimeoutError, 504, "upstream-timeout", "Upstream timeout", "{who} did not answer in time."),
    (
        AuthenticationError,
        502,
        "upstream-auth-failed",
        "Upstream authentication failed",
        "{who} rejected this service's credentials.",
    ),
    (RateLimitedError, 503, "upstream-rate-limited", "Upstream rate limit", "{who} is rate limiting us."),
    (
        MalformedResponseError,
        502,
        "upstream-malformed-response",
        "Upstream response unusable",
        "{who} sent a response that could not be used.",
    ),
    (
        (ServerError, RetryExhaustedError),
        502,
        "upstream-error",
        "Upstream error",
        "{who} answered with an error.",
    ),
    (
        APIStatusError,
        502,
        "upstream-rejected",
        "Upstream rejected the request",
        "{who} rejected a request made on behalf of this one.",
    ),
    (
        (APIConnectionError, IncompleteBodyError),
        502,
        "upstream-unreachable",
        "Upstream unreachable",
        "The connection to {whom} failed.",
    ),
    (APIError, 502, "upstream-error", "Upstream error", "A call to {whom} failed."),
)


def _classify(error: APIError, integration: str | None) -> tuple[int, str, str, str, int | None]:
    whom = f"the {integration!r} upstream" if integration else "an upstream service"
    # The last row matches every APIError. Retries that ran out on 429s are a rate limit, not a 5xx.
    rate_limited = isinstance(error, RetryExhaustedError) and error.status == 429
    _, status, slug, title, template = next(
        kind
        for kind in _KINDS
        if (kind[0] is RateLimitedError if rate_limited else isinstance(error, kind[0]))
    )
    detail = template.format(who=whom[0].upper() + whom[1:], whom=whom)
    retry_after = None
    if isinstance(error, CircuitOpenError):
        # Never 0: a client told "retry now" would hit the open circuit again. Clamped like every
        # number from outside: a store or an upstream may say inf, NaN or 1e400.
        retry_after = math.ceil(clamp(error.retry_in, 1.0, MAX_WAIT, 1.0))
        detail += f" Retry in {retry_after} s."
    elif isinstance(error, RateLimitedError) and error.retry_after is not None:
        retry_after = math.ceil(clamp(error.retry_after, 1.0, MAX_WAIT, 1.0))
    return status, slug, title, detail, retry_after


def _upstream_details(error: APIError) -> dict[str, Any]:
    details: dict[str, Any] = {
        "error": type(error).__name__,
        "message": redact_log_text(str(error)),
        "method": error.method,
        "url": error.url,  # redacted when the error was made
        "status": error.status,
        "attempts": error.attempts,
        "elapsed_ms": round(error.elapsed * 1000, 1),
    }
    response = error.response
    # Only a body already read: reading one here could block on a stalled upstream.
    if response is not None and content_consumed(response):
        try:
            text = response.text
        except Exception:  # an undecodable body is not worth a second error
            text = ""
        if text:
            # Redact before cutting, so a cut never leaves half a credential behind.
            sent = error.request if isinstance(error.request, requests.PreparedRequest) else None
            text = redact_log_text(redact_text(text, _request_secrets(sent)))
            details["body"] = text[:_BODY_PREVIEW]
    return details


def register_error_handlers(app: Flask, *, expose_upstream_details: bool | None = None) -> None:
    """Answer every :class:`~resilient_session.APIError` escaping a view of *app* with problem+json.

    A ``requests.HTTPError`` from ``response.raise_for_status()`` is answered as the typed status error
    of its response, and the ``requests.JSONDecodeError`` of ``response.json()`` as a
    :class:`~resilient_session.MalformedResponseError` (unless the app has its own handler for them).
    A handler the app registers for a more specific class (``NotFoundError``, say) still wins.
    *expose_upstream_details* ``None`` reads ``RESILIENT_EXPOSE_UPSTREAM_DETAILS`` at each error.
    """

    def handle(error: APIError) -> flask.Response:
        return _answer(error, expose_upstream_details)

    app.register_error_handler(APIError, handle)
    # ``response.raise_for_status()`` and ``response.json()`` keep raising what requests raises; escaping
    # a view, they are upstream failures all the same. An app's own handler for them is left in place.
    own = app.error_handler_spec.get(None, {}).get(None, {})
    if requests.HTTPError not in own:

        def handle_http_error(error: requests.HTTPError) -> flask.Response:
            return _answer(_typed_status_error(error), expose_upstream_details)

        app.register_error_handler(requests.HTTPError, handle_http_error)
    if requests.exceptions.JSONDecodeError not in own:

        def handle_json_error(error: requests.exceptions.JSONDecodeError) -> flask.Response:
            # requests' error carries only the body: find the response (and its integration) it came from.
            integration, response = _source_of(error)
            # The message says where parsing stopped; it never quotes the body.
            typed = MalformedResponseError(
                f"the JSON body is malformed: {error}",
                details={"expected": "json"},
                request=response.request if response is not None else None,
                response=response,
                attempts=_attempts(response),
            )
            return _answer(typed, expose_upstream_details, integration=integration)

        app.register_error_handler(requests.exceptions.JSONDecodeError, handle_json_error)


def _source_of(
    error: requests.exceptions.JSONDecodeError,
) -> tuple[str | None, requests.Response | None]:
    """The integration and response whose body *error* failed to parse, from the calls of this request.

    The body is matched first; failing that, a request that called a single integration names it.
    """
    if not has_request_context():
        return None, None
    seen: deque[tuple[str, requests.Response]] = g.get(_RESPONSES) or deque()
    doc = getattr(error, "doc", None)
    if isinstance(doc, str):
        for name, response in reversed(seen):
            if content_consumed(response) and _body_is(response, doc):
                return name, response
    names = set(g.get(_CALLS, {}).values())
    return (names.pop() if len(names) == 1 else None), None


def _body_is(response: requests.Response, doc: str) -> bool:
    try:
        return response.text == doc or (response.content or b"").decode("utf-8", "replace") == doc
    except Exception:  # an undecodable body is not the one requests parsed
        return False


def _attempts(response: requests.Response | None) -> int:
    attempts = getattr(response, "attempts", None)
    return attempts if isinstance(attempts, int) else 0


def _typed_status_error(error: requests.HTTPError) -> APIError:
    """The typed error for a plain ``HTTPError`` (from ``response.raise_for_status()``)."""
    response = error.response
    if isinstance(response, requests.Response):
        attempts = getattr(response, "attempts", None)
        typed = status_error_for(response, attempts=attempts if isinstance(attempts, int) else 1)
        if typed is not None:
            return typed
    return APIError(str(error), request=error.request, response=response)


def _answer(
    error: APIError, expose_upstream_details: bool | None, *, integration: str | None = None
) -> flask.Response:
    """Answer *error* with its problem+json response, and log it (redacted) on ``app.logger``."""
    config = current_app.config
    expose = expose_upstream_details
    if expose is None:
        expose = bool(config.get("RESILIENT_EXPOSE_UPSTREAM_DETAILS", False))
    state = current_app.extensions.get(EXTENSION_KEY)
    if integration is None and error.response is not None and has_request_context():
        # The response itself names its session, also after a redirect to another origin.
        integration = next((name for name, seen in g.get(_RESPONSES, ()) if seen is error.response), None)
    if integration is None:
        integration = g.get(_CALLS, {}).get(error.url)
    if integration is None and isinstance(state, AppIntegrations):
        integration = state.integration_for(error.url)
    request_id = g.get(_REQUEST_ID) if has_request_context() else None
    problem = problem_for(
        error, integration=integration, request_id=request_id, expose_upstream_details=expose
    )
    current_app.logger.warning(
        "%s %s -> %d %s: %s",
        request.method,
        request.path,
        problem.status,
        problem.slug,
        redact_log_text(str(error)),
        extra={"integration": integration, "request_id": request_id},
    )
    return problem.to_response(
        type_base=config.get("RESILIENT_PROBLEM_TYPE_BASE", DEFAULT_PROBLEM_TYPE_BASE),
        instance=request.path,
    )
