"""The Flask extension: an app's integrations as sessions, request ids, and on request problem+json errors.

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
import importlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import flask
from flask import Blueprint, Flask, current_app, has_app_context

from ...config.load import Source
from ...config.sessions import load_integrations
from ...errors import (
    ConfigurationError,
)
from ...session import ResilientSession
from .handlers import register_error_handlers
from .problems import DEFAULT_PROBLEM_TYPE_BASE
from .request_ids import bind_incoming_request_id, echo_request_id, unbind_request_id
from .sessions import EXTENSION_KEY, AppIntegrations

__all__ = ["Integrations"]


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
        app.before_request(bind_incoming_request_id)
        app.after_request(echo_request_id)
        app.teardown_request(unbind_request_id)
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

        The JSON report gives each integration's circuits (state per host), retry budget, last
        failure and degraded answers; the status is 200 unless a circuit is open (then 503). An
        integration with a degrade policy is ``"degraded"``, not unavailable, while its circuit is open,
        and so is one that gave a degraded answer in the last
        :data:`~resilient_session.contrib.flask.sessions.DEGRADED_WINDOW` seconds. It names upstream
        hosts: keep it off the public internet.
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


# Names this module held before it was split by concept; importable from here for one more release.
_MOVED = {
    **dict.fromkeys(
        [
            "_LastError",
            "_CALLS",
            "_RESPONSES",
            "_RESPONSES_KEPT",
            "_MAX_SEEN_HOSTS",
            "_MAX_SEEN_ROUTES",
        ],
        "sessions",
    ),
    **dict.fromkeys(["_REQUEST_ID", "_BINDING", "_VALID_REQUEST_ID"], "request_ids"),
    **dict.fromkeys(
        ["Problem", "problem_for", "_KINDS", "_classify", "_upstream_details", "_BODY_PREVIEW"], "problems"
    ),
    **dict.fromkeys(["_answer", "_attempts", "_body_is", "_source_of", "_typed_status_error"], "handlers"),
}
_RENAMED = {
    "_bind_request_id": ("request_ids", "bind_incoming_request_id"),
    "_echo_request_id": ("request_ids", "echo_request_id"),
    "_unbind_request_id": ("request_ids", "unbind_request_id"),
}


def __getattr__(name: str) -> Any:
    module, target = _RENAMED.get(name) or (_MOVED.get(name), name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = f"resilient_session.contrib.flask.{module}"
    warnings.warn(
        f"{__name__}.{name} moved to {home}; import it from there", DeprecationWarning, stacklevel=2
    )
    return getattr(importlib.import_module(home), target)
