"""RFC 9457 problem details for the typed errors: which status, which words, which upstream details."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import flask
import requests

from ..._compat.requests import content_consumed
from ..._numbers import MAX_WAIT, clamp
from ..._redact import redact_log_text, redact_text
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
    QuotaExceededError,
    RateLimitedError,
    RetryExhaustedError,
    ServerError,
)
from ...normalization.secrets import _request_secrets

__all__ = ["DEFAULT_PROBLEM_TYPE_BASE", "Problem", "problem_for"]

DEFAULT_PROBLEM_TYPE_BASE = "urn:resilient-session:problem:"

_BODY_PREVIEW = 1024


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

    Upstream timeouts (deadline included) give 504; an open circuit, a full bulkhead, a call our own
    rate limit refused and an upstream 429 give 503 (``Retry-After`` when known); every other upstream
    failure gives 502, including an upstream 401/403: those are this service's credentials failing,
    not the caller's. A :class:`~resilient_session.ConfigurationError` gives 500. Nothing from the
    upstream (URL, body, message) appears unless *expose_upstream_details*.
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
        QuotaExceededError,
        503,
        "upstream-quota",
        "Upstream quota reached",
        "The rate limit of {whom} has no room for this request now.",
    ),
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
    elif isinstance(error, QuotaExceededError):
        retry_after = math.ceil(clamp(error.retry_after, 1.0, MAX_WAIT, 1.0))
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
