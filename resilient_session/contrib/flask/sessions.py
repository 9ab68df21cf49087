"""The sessions of one app, by integration name, and what they saw: hosts called, the last failure."""

from __future__ import annotations

import atexit
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import g, has_request_context

from ..._hosts import host_key
from ..._numbers import MAX_WAIT, clamp
from ...errors import (
    BulkheadFullError,
    CircuitOpenError,
    QuotaExceededError,
)
from ...observe.events import CallEvent
from ...policies.breaker import CircuitState
from ...session import ResilientSession

__all__ = ["EXTENSION_KEY", "AppIntegrations", "calls_of_request", "responses_of_request"]

#: Where an app keeps its :class:`AppIntegrations`: ``current_app.extensions["resilient_session"]``.
EXTENSION_KEY = "resilient_session"

# Keys on ``flask.g``: which integration made which call of this request, and its last few responses
# (read by the error handlers to name the integration of an error).
_CALLS = "_resilient_session_calls"
_RESPONSES = "_resilient_session_responses"
_RESPONSES_KEPT = 16
_MAX_SEEN_HOSTS = 32
_MAX_SEEN_ROUTES = 64


@dataclass(frozen=True)
class _LastError:
    at: float
    kind: str


@dataclass(frozen=True)
class _Degraded:
    at: float
    kind: str
    reason: str
    count: int


#: Seconds after its last degraded answer that an integration still reports ``"degraded"`` in ``/health``.
DEGRADED_WINDOW = 60.0
#: Key on ``flask.g``: the degraded answers of this request, as ``(integration, Degraded)``.
DEGRADED = "_resilient_session_degraded"


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
        self._degraded: dict[str, _Degraded] = {}  # the last answer a degrade policy gave, per integration
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
                if isinstance(error, (CircuitOpenError, BulkheadFullError, QuotaExceededError)):
                    return
                kind = type(error).__name__
            elif event.status is not None and event.status >= 500:
                kind = f"status {event.status}"
            else:
                kind = ""
            degraded = event.degraded
            if degraded is not None:
                with self._lock:
                    before = self._degraded.get(name)
                    count = before.count + 1 if before is not None else 1
                    self._degraded[name] = _Degraded(time.time(), degraded.kind, degraded.reason, count)
                if has_request_context():
                    g.setdefault(DEGRADED, []).append((name, degraded))
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
            degraded = self._degraded.get(name)
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
        recent = degraded is not None and time.time() - degraded.at < DEGRADED_WINDOW
        if session.degrade is not None and status == "unavailable":
            # Its reads are answered from the store (or a fallback) while the circuit is open.
            status = "degraded"
        elif recent and status == "ok":
            status = "degraded"
        return {
            "status": status,
            "degraded_answers": None
            if degraded is None
            else {
                "count": degraded.count,
                "recent": recent,
                "last": {
                    "at": datetime.fromtimestamp(degraded.at, timezone.utc).isoformat(
                        timespec="milliseconds"
                    ),
                    "kind": degraded.kind,
                    "reason": degraded.reason,
                },
            },
            "circuits": circuits,
            "budget": budgets,
            "last_error": None
            if last is None
            else {
                "at": datetime.fromtimestamp(last.at, timezone.utc).isoformat(timespec="milliseconds"),
                "type": last.kind,
            },
        }


def calls_of_request() -> dict[str, str]:
    """The integration of each URL called while handling the current request (empty outside one)."""
    calls: dict[str, str] = g.get(_CALLS, {}) if has_request_context() else {}
    return calls


def responses_of_request() -> Sequence[tuple[str, requests.Response]]:
    """The last few responses (with their integration) of the current request, oldest first."""
    seen: Sequence[tuple[str, requests.Response]] = (g.get(_RESPONSES) or ()) if has_request_context() else ()
    return seen
