"""Schema drift: what a body that does not fit its type is reported as, and where.

Each ``into()`` that finds drift (under the ``raise`` and ``warn`` policies) is reported to:

* the ``resilient_session`` logger: one WARNING per integration, route and path per process, not one per
  call (:func:`reset_drift_warnings` forgets which were logged);
* the session's ``on_schema_drift`` callbacks, with a :class:`SchemaDrift`, on every call;
* the current OpenTelemetry span, as a ``"schema drift"`` span event (when tracing is on);
* the OpenTelemetry counter ``resilient_session.schema_drift`` (one per path and call), labelled with
  ``integration``, ``route``, ``path`` and ``drift`` (``"mismatch"`` or ``"unknown"``).

No report holds a value of the body: paths, expected types and the kinds of values received only.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from time import monotonic
from typing import Any, Literal
from urllib.parse import urlsplit

from .._options import DRIFT_POLICIES, check_session_option
from .._redact import redact_url

__all__ = [
    "DRIFT_POLICIES",
    "DriftPolicy",
    "Mismatch",
    "SchemaDrift",
    "check_drift_policy",
    "look_for_unknown",
    "note_unknown",
    "report_drift",
    "reset_drift_warnings",
    "route_of",
]

log = logging.getLogger("resilient_session")

DriftPolicy = Literal["raise", "warn", "ignore"]


def check_drift_policy(value: Any) -> None:
    """Raise ``TypeError``/``ValueError`` (worded as the integrations file words it) for a bad policy."""
    check_session_option("drift", value)


@dataclass(frozen=True)
class Mismatch:
    """One place where a body does not fit its type.

    :param path: Where, as ``items[3].owner.id`` (list positions as numbers).
    :param expected: What the type expects there (``"Input should be a valid integer"``).
    :param received: The kind of value found: ``"string"``, ``"integer"``, ``"number"``, ``"boolean"``,
        ``"null"``, ``"object"``, ``"array"``, or ``"nothing"`` for a missing field. Never the value.
    :param type: pydantic's error type (``"int_parsing"``, ``"missing"`` ...).
    """

    path: str
    expected: str
    received: str
    type: str

    @property
    def pattern(self) -> str:
        """The path with list positions as ``[*]``: one report per pattern, not per item."""
        return _INDEX.sub("[*]", self.path)

    def __str__(self) -> str:
        return f"{self.path or '(body)'}: {self.expected} (got {self.received})"


_INDEX = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class SchemaDrift:
    """What ``on_schema_drift`` callbacks receive: a body that did not fit its type, or had fields the
    type does not declare.

    :param integration: The session's ``integration`` name, or ``None``.
    :param route: ``"METHOD /path"`` with identifiers as ``{id}`` (or the ``route=`` given to ``into``).
    :param model: The name of the type asked for.
    :param policy: The drift policy applied: ``"raise"`` or ``"warn"``.
    :param mismatches: Each place that did not fit.
    :param unknown: Paths of fields the type does not declare (``[*]`` for list positions).
    :param format: ``"json"`` or ``"xml"``.
    :param method: The request method.
    :param url: The URL, credentials redacted.
    :param status: The HTTP status.
    :param request_id: The server's (or the call's) request id, if known.
    :param raised: True when the caller got a :class:`~resilient_session.errors.SchemaMismatchError`.
    """

    integration: str | None
    route: str
    model: str
    policy: str
    mismatches: tuple[Mismatch, ...]
    unknown: tuple[str, ...]
    format: str
    method: str | None
    url: str
    status: int
    request_id: str | None
    raised: bool


# Path segments that identify one resource rather than name a route: numbers, UUIDs, long hex strings,
# e-mail addresses, anything with four digits or more. Replaced by {id}, so routes are a bounded set.
_ID = re.compile(r"^(?:\d+|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}|[0-9a-fA-F]{12,})$")


def _is_id(segment: str) -> bool:
    return bool(_ID.match(segment)) or "@" in segment or sum(c.isdigit() for c in segment) >= 4


def route_of(method: str | None, url: str) -> str:
    """``"GET /users/{id}/orders"`` for a GET of ``https://host/users/42/orders?page=2``."""
    try:
        path = urlsplit(redact_url(url)).path or "/"
    except ValueError:
        path = "/"
    segments = ["{id}" if segment and _is_id(segment) else segment for segment in path.split("/")]
    return f"{method or '?'} {'/'.join(segments)}"


# No lock (nothing here may deadlock a forked child or block a green thread): dict.setdefault with
# tuple-of-str keys is atomic, so exactly one caller sees its own marker stored.
_warned: dict[tuple[str | None, str, str], object] = {}
#: Past this many (integration, route, path) keys, new ones are still logged but no longer remembered.
_MAX_WARNED = 10_000


# Once a route's JSON bodies were seen with undeclared fields, they are looked for again at most this
# often: looking costs a second validation of every such body, and the report has been made.
_UNKNOWN_RECHECK = 60.0
_unknown_seen: dict[Any, float] = {}


def look_for_unknown(key: Any) -> bool:
    """Whether to look for undeclared fields now, for *key* (type, integration, route)."""
    seen = _unknown_seen.get(key)
    return seen is None or monotonic() - seen >= _UNKNOWN_RECHECK


def note_unknown(key: Any) -> None:
    """Undeclared fields were found (and reported) for *key*."""
    if len(_unknown_seen) >= _MAX_WARNED:
        _unknown_seen.clear()
    _unknown_seen[key] = monotonic()


def reset_drift_warnings() -> None:
    """Forget which drift WARNINGs were logged, so each is logged once more (for tests and long jobs);
    undeclared fields are looked for again on the next call of every route."""
    _warned.clear()
    _unknown_seen.clear()


def report_drift(drift: SchemaDrift, session: Any) -> None:
    """Log (once per integration, route and path), emit the event, the span event and the counter."""
    paths = [
        (m.pattern, f"{m.pattern or '(body)'}: {m.expected} (got {m.received})", "mismatch")
        for m in drift.mismatches
    ]
    paths += [(path, f"{path}: not declared by {drift.model}", "unknown") for path in drift.unknown]
    fresh: list[str] = []
    for pattern, text, _kind in paths:
        key = (drift.integration, drift.route, pattern)
        if key in _warned:
            continue
        if len(_warned) >= _MAX_WARNED:
            fresh.append(text)  # logged, not remembered: the memory stays bounded
            continue
        marker = object()
        if _warned.setdefault(key, marker) is marker:
            fresh.append(text)
    if fresh:
        where = f"{drift.integration} " if drift.integration else ""
        log.warning(
            "schema drift in %s%s (%s body into %s, policy %s): %s",
            where,
            drift.route,
            drift.format,
            drift.model,
            drift.policy,
            "; ".join(fresh),
            extra={
                "integration": drift.integration,
                "method": drift.method,
                "url": drift.url,
                "status": drift.status,
                "request_id": drift.request_id,
                "outcome": "schema_drift",
            },
        )
    events = getattr(session, "events", None)
    if events:
        events.emit("schema_drift", drift)
    if getattr(session, "tracing", True) is not False and "opentelemetry" in sys.modules:
        _otel(drift, paths)


_counter: Any = None


def _otel(drift: SchemaDrift, paths: list[tuple[str, str, str]]) -> None:
    global _counter
    from opentelemetry import metrics, trace

    span = trace.get_current_span()
    if span.is_recording():
        attributes: dict[str, Any] = {
            "resilient_session.route": drift.route,
            "resilient_session.model": drift.model,
            "resilient_session.drift.policy": drift.policy,
            "resilient_session.drift.paths": [pattern for pattern, _, _ in paths],
        }
        if drift.integration:
            attributes["resilient_session.integration"] = drift.integration
        span.add_event("schema drift", attributes)
    counter = _counter
    if counter is None:
        # Created once; an SDK installed later is picked up by the API's proxy meter.
        counter = _counter = metrics.get_meter("resilient_session").create_counter(
            "resilient_session.schema_drift",
            unit="{path}",
            description="Paths of response bodies that did not fit the type asked for",
        )
    for pattern, _, kind in paths:
        counter.add(
            1,
            {
                "integration": drift.integration or "",
                "route": drift.route,
                "path": pattern,
                "drift": kind,
            },
        )
