"""Callbacks told about every call of a session: the registry and what its callbacks receive."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from ..policies.quota_headers import Quota

__all__ = ["BudgetExhausted", "CallEvent", "Events"]

log = logging.getLogger("resilient_session")

Callback = TypeVar("Callback", bound=Callable[..., Any])


@dataclass(frozen=True)
class CallEvent:
    """What ``on_request``, ``on_retry``, ``on_response`` and ``on_error`` callbacks receive.

    :param kind: ``"request"``, ``"retry"``, ``"response"`` or ``"error"``.
    :param integration: The session's ``integration`` name, or ``None``.
    :param method: The HTTP method.
    :param url: The URL, credentials redacted.
    :param request_id: The call's request id (``None`` when the session sends none).
    :param attempt: Attempts made so far (for ``retry``: the attempt that failed).
    :param elapsed: Seconds since the call started.
    :param status: The HTTP status of the response (``response``), or of the attempt being retried.
    :param reason: Why an attempt is retried (``"status 503"``, ``"read timeout"`` ...).
    :param delay: Seconds the retry waits first.
    :param outcome: ``"ok"``, ``"http_error"`` or ``"error"`` for ``response`` and ``error``.
    :param breaker_state: ``"closed"``, ``"half_open"`` or ``"open"`` when a circuit breaker is used.
    :param quota: With a rate limit (``response`` and ``error``): the last quota the upstream described
        during the call (a :class:`~resilient_session.policies.Quota`: limit, remaining, reset), or
        ``None`` when it described none.
    :param quota_wait: With a rate limit: seconds the call waited for its slots.
    :param response: The final response (``response`` only).
    :param error: The exception the call raised (``error`` only).
    :param degraded: For a ``response`` a degrade policy gave in place of a failure (``outcome``
        ``"degraded"``), its :class:`~resilient_session.policies.Degraded`; otherwise ``None``.
    """

    kind: str
    integration: str | None
    method: str
    url: str
    request_id: str | None
    attempt: int
    elapsed: float
    status: int | None = None
    reason: str | None = None
    delay: float | None = None
    outcome: str | None = None
    breaker_state: str | None = None
    response: requests.Response | None = dataclasses.field(default=None, repr=False)
    error: BaseException | None = None
    degraded: Any = None
    quota: Quota | None = None
    quota_wait: float | None = None


@dataclass(frozen=True)
class BudgetExhausted:
    """What ``on_budget_exhausted`` callbacks receive: a retry was skipped because the budget of
    ``host`` (a ``scheme://host:port`` or the budget's name) could not pay for it."""

    host: str
    reason: str
    integration: str | None
    method: str
    url: str
    request_id: str | None


_KINDS = (
    "request",
    "retry",
    "response",
    "error",
    "breaker_state_change",
    "budget_exhausted",
    "schema_drift",
)


class Events:
    """Callbacks told about every call of a session, to feed metrics or audit logs.

    Register with the ``on_*`` methods (each returns the callback, so they work as decorators)::

        @session.events.on_retry
        def count_retry(event: CallEvent) -> None:
            RETRIES.labels(event.integration, event.reason).inc()

    ``on_request``, ``on_retry``, ``on_response`` and ``on_error`` receive a :class:`CallEvent`;
    ``on_breaker_state_change`` a :class:`~resilient_session.StateChange` (transitions caused by this
    session's calls); ``on_budget_exhausted`` a :class:`BudgetExhausted`; ``on_schema_drift`` a
    :class:`~resilient_session.normalization.SchemaDrift`. In one call the order is ``request``, then
    ``retry`` once per retry, then exactly one of ``response`` or ``error``.

    Callbacks run synchronously in the calling thread. An exception in a callback is logged and never
    reaches the call. Copies and pickles of a session start with no callbacks.
    """

    __slots__ = ("_callbacks",)

    def __init__(self) -> None:
        self._callbacks: dict[str, tuple[Callable[[Any], object], ...]] = {}

    def on_request(self, callback: Callback) -> Callback:
        """Call *callback* when a call starts (once per call, not per attempt or redirect)."""
        return self._add("request", callback)

    def on_retry(self, callback: Callback) -> Callback:
        """Call *callback* when an attempt failed and another one will be made."""
        return self._add("retry", callback)

    def on_response(self, callback: Callback) -> Callback:
        """Call *callback* when a call ends with a response (any status)."""
        return self._add("response", callback)

    def on_error(self, callback: Callback) -> Callback:
        """Call *callback* when a call ends with an exception."""
        return self._add("error", callback)

    def on_breaker_state_change(self, callback: Callback) -> Callback:
        """Call *callback* when a call of this session moves its circuit to another state."""
        return self._add("breaker_state_change", callback)

    def on_budget_exhausted(self, callback: Callback) -> Callback:
        """Call *callback* when the retry budget refused a retry of a call of this session."""
        return self._add("budget_exhausted", callback)

    def on_schema_drift(self, callback: Callback) -> Callback:
        """Call *callback* each time ``response.normalized.into()`` of a response of this session finds
        a body that does not fit its type, or fields the type does not declare."""
        return self._add("schema_drift", callback)

    def remove(self, callback: Callable[..., Any]) -> None:
        """Unregister *callback* from every event it was registered for."""
        self._callbacks = {
            kind: kept
            for kind, callbacks in self._callbacks.items()
            if (kept := tuple(c for c in callbacks if c != callback))
        }

    def emit(self, kind: str, payload: object) -> None:
        """Call the callbacks registered for *kind* with *payload*; a failing callback is logged."""
        for callback in self._callbacks.get(kind, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("resilient_session event callback %r failed on %r", callback, kind)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{kind}={len(self._callbacks[kind])}" for kind in _KINDS if kind in self._callbacks
        )
        return f"{type(self).__name__}({counts})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Callbacks are process-local (often closures over metric objects): a copy starts without any.
        return (Events, ())

    def _add(self, kind: str, callback: Callback) -> Callback:
        if not callable(callback):
            raise TypeError(f"on_{kind} needs a callable, got {callback!r}")
        # Copy-on-write: emit() iterates a tuple that registration never mutates.
        self._callbacks = {**self._callbacks, kind: (*self._callbacks.get(kind, ()), callback)}
        return callback


# Names this module held before it was split by concept; importable from here for one more release.
_MOVED = {
    **dict.fromkeys(
        [
            "DEFAULT_REQUEST_ID_HEADER",
            "bind_request_id",
            "current_request_id",
            "with_request_id",
            "_bound_request_id",
            "_ensure_request_id",
            "_new_request_id",
            "_random_bits",
            "_items",
            "_lower",
            "_names",
        ],
        "request_id",
    ),
    **dict.fromkeys(["CallContextFilter", "_FIELDS", "_context_filter"], "log_context"),
    **dict.fromkeys(
        ["begin_call", "end_call", "report_refused", "_Attempt", "_Observer", "_plural", "_trace_for"],
        "observer",
    ),
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = f"resilient_session.observe.{module}"
    warnings.warn(
        f"{__name__}.{name} moved to {home}; import it from there",
        DeprecationWarning,
        stacklevel=2,
    )
    target = "ensure_request_id" if name == "_ensure_request_id" else name
    return getattr(importlib.import_module(home), target)
