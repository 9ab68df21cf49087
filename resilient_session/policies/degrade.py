"""Graceful degradation: a stale answer, or a declared fallback, when the upstream cannot give a fresh one."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests

from .._options import Option, check_attributes
from ..stores.responses import ResponseStore
from .routes import DEFAULT_GROUP, RouteGroups, pattern_problem

__all__ = ["DEFAULT_FAILURES", "FAILURES", "Degrade", "Degraded"]

#: Every failure a policy can answer: an open circuit, a full bulkhead, a spent quota, a deadline too short
#: for another attempt, a connection refused, reset or broken off, a timeout, and a failure status
#: (``failure_statuses``) left after the retries.
FAILURES = frozenset(
    {"circuit_open", "bulkhead_full", "quota", "deadline", "connection", "timeout", "status"}
)
#: The failures answered unless a policy says otherwise: all of them.
DEFAULT_FAILURES = FAILURES

#: A fallback: a value (``bytes``/``str`` as the body, anything else as a JSON body, a ``Response`` as is)
#: or a function of the ``PreparedRequest`` returning one (``None``: no fallback for this request).
Fallback = Any


@dataclass(frozen=True)
class Degraded:
    """What ``response.normalized.degraded`` says about an answer that is not fresh.

    :param kind: ``"stale"`` (a stored answer) or ``"fallback"`` (the policy's declared fallback).
    :param reason: The failure that prevented a fresh answer (one of :data:`FAILURES`).
    :param age: Seconds since the stored answer was received (``None`` for a fallback).
    :param error: The exception the call would have raised (``None`` for a failure status).
    :param status: The failure status the upstream answered with, for reason ``"status"``.
    """

    kind: str
    reason: str
    age: float | None = None
    error: BaseException | None = field(default=None, repr=False, compare=False)
    status: int | None = None

    def header_value(self) -> str:
        """The value of the :data:`DEGRADED_HEADER` a degraded response carries."""
        parts = [self.kind, f"reason={self.reason}"]
        if self.age is not None:
            parts.append(f"age={int(self.age)}")
        return "; ".join(parts)


#: The response header a degraded answer carries: ``stale; reason=circuit_open; age=42``.
DEGRADED_HEADER = "Resilient-Degraded"


def _failures_problem(value: Any) -> str | None:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        return "expected a list of failures"
    unknown = sorted(str(v) for v in value if v not in FAILURES)
    if unknown:
        return f"unknown failure(s) {', '.join(unknown)} (known: {', '.join(sorted(FAILURES))})"
    return None


@dataclass(frozen=True, kw_only=True)
class Degrade:
    """Answer from the store, or with a fallback, when a fresh answer cannot be had.

    Given to a session (``ResilientSession(degrade=Degrade(...))``) or an integration, it keeps each
    fresh answer to a ``GET`` or ``HEAD`` that may be stored, and when a call then fails with one of
    ``on``, answers with the stored one if it is at most ``max_stale`` seconds old, else with the
    ``fallback``, else raises the error as without the policy. The answer is marked: its
    ``response.normalized.degraded`` (a :class:`Degraded`), its ``Resilient-Degraded`` header, the
    call's event, log line and span. A call passing ``allow_stale=False`` is never answered this way.

    :param max_stale: Seconds a stored answer may be old to be served. Default 300.
    :param fallback: What to answer when nothing stored is young enough: a value (``bytes`` or ``str``
        as the body, a ``requests.Response`` as is, anything else as a JSON body) or a function of the
        ``PreparedRequest`` returning one, or ``None`` for no fallback. Default ``None``.
    :param on: The failures answered (see :data:`FAILURES`). Default: all.
    :param failure_statuses: Statuses left after the retries that count as failure ``"status"``.
        Default 429, 500, 502, 503, 504.
    :param keep_statuses: Statuses of fresh answers that are stored. Default 200.
    :param store: A :class:`~resilient_session.stores.ResponseStore`; ``None`` (default): one SQLite file
        in the user's cache directory, shared by every policy of the process that has none.
    :param store_authorized: Store answers to requests carrying credentials (``Authorization``, an API
        key, a cookie) and answers marked ``Cache-Control: private``. Default ``False``: the store is
        shared, so only answers ``public``/``s-maxage``/``must-revalidate`` say may be shared are kept
        from such requests. Keys always separate credential identities.
    :param key_headers: More request headers whose values select different stored answers
        (``("X-Tenant",)``); credential headers and the response's ``Vary`` are always honoured.
    :param max_body: Bytes a stored body may have (the session's ``max_response_size`` applies too).
        Default 1 MiB.
    :param routes: Route patterns (as :class:`~resilient_session.policies.routes.RouteGroups` takes them)
        mapped to the policy of their paths: another ``Degrade``, or ``False`` for none. Paths no
        pattern matches use this policy.

    Immutable; :meth:`new` returns a changed copy.
    """

    max_stale: float = 300.0
    fallback: Fallback = None
    on: Collection[str] = DEFAULT_FAILURES
    failure_statuses: Collection[int] = frozenset({429, 500, 502, 503, 504})
    keep_statuses: Collection[int] = frozenset({200})
    store: ResponseStore | None = None
    store_authorized: bool = False
    key_headers: Collection[str] = ()
    max_body: int = 1024 * 1024
    routes: Mapping[str, Degrade | bool] | None = None

    #: The plain-data options and what each accepts (the integrations file's ``degrade`` table).
    OPTIONS: ClassVar[dict[str, Option]] = {
        "max_stale": Option("number", minimum=0),
        "failure_statuses": Option("statuses"),
        "keep_statuses": Option("statuses"),
        "store_authorized": Option("boolean"),
        "max_body": Option("integer", minimum=0),
    }

    def __post_init__(self) -> None:
        for name in ("on", "failure_statuses", "keep_statuses"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple, set)):
                object.__setattr__(self, name, frozenset(value))
        headers: Any = self.key_headers
        if isinstance(headers, str) or not isinstance(headers, (list, tuple)):
            raise TypeError("key_headers: expected a list of header names")
        object.__setattr__(self, "key_headers", tuple(self.key_headers))
        check_attributes(self)
        problem = _failures_problem(self.on)
        if problem is not None:
            raise ValueError(f"on: {problem}")
        if self.store is not None and not isinstance(self.store, ResponseStore):
            raise TypeError(f"store: expected a ResponseStore or None, not {type(self.store).__name__}")
        groups = None
        if self.routes is not None:
            if not isinstance(self.routes, Mapping):
                raise TypeError("routes: expected a mapping of path patterns to a Degrade or False")
            for pattern, policy in self.routes.items():
                problem = pattern_problem(pattern)
                if problem is not None:
                    raise ValueError(f"routes: {pattern!r}: {problem}")
                if policy is not False and not isinstance(policy, Degrade):
                    raise TypeError(f"routes: {pattern!r}: expected a Degrade or False")
            groups = RouteGroups(tuple((p, p) for p in self.routes))
        object.__setattr__(self, "_groups", groups)

    def new(self, **changes: Any) -> Degrade:
        """A copy with *changes* applied."""
        return dataclasses.replace(self, **changes)

    def for_path(self, path: str) -> Degrade | None:
        """The policy for a request to *path* (``None``: no degradation there)."""
        groups: RouteGroups | None = self._groups  # type: ignore[attr-defined]
        if groups is None or self.routes is None:
            return self
        group = groups.group(path)
        if group == DEFAULT_GROUP:
            return self
        policy = self.routes[group]
        if policy is False:
            return None
        return self if policy is True else policy

    def fallback_for(self, request: requests.PreparedRequest) -> Any:
        """The fallback value for *request* (``None``: none)."""
        fallback = self.fallback
        if callable(fallback) and not isinstance(fallback, requests.Response):
            call: Callable[[requests.PreparedRequest], Any] = fallback
            return call(request)
        return fallback
