"""Error handlers: typed errors escaping a view become problem+json responses, logged redacted."""

from __future__ import annotations

import flask
import requests
from flask import Flask, current_app, has_request_context, request

from ..._compat.requests import content_consumed
from ..._redact import redact_log_text
from ...errors import (
    APIError,
    MalformedResponseError,
    status_error_for,
)
from .problems import DEFAULT_PROBLEM_TYPE_BASE, problem_for
from .request_ids import request_id_of_request
from .sessions import EXTENSION_KEY, AppIntegrations, calls_of_request, responses_of_request

__all__ = ["register_error_handlers"]


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
    seen = responses_of_request()
    doc = getattr(error, "doc", None)
    if isinstance(doc, str):
        for name, response in reversed(seen):
            if content_consumed(response) and _body_is(response, doc):
                return name, response
    names = set(calls_of_request().values())
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
        integration = next((name for name, seen in responses_of_request() if seen is error.response), None)
    if integration is None and error.url is not None:
        integration = calls_of_request().get(error.url)
    if integration is None and isinstance(state, AppIntegrations):
        integration = state.integration_for(error.url)
    request_id = request_id_of_request()
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
