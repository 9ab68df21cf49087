"""Circuit breaker: stop calling an upstream that keeps failing, and probe it until it recovers."""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import requests
from requests import exceptions as rexc

from .._call import current_call
from .._hosts import host_key
from .._numbers import clamp
from .._options import Option, check_attributes
from ..errors import BulkheadFullError, CircuitOpenError
from ..stores.base import OpSteps, Result, StateStore, run_steps
from ..stores.memory import default_store
from .circuit import (
    _ACQUIRE,
    _FAILURE,
    _HALF_OPEN,
    _IGNORE,
    _OPEN,
    _RECORD,
    _RESET,
    _SNAPSHOT,
    _SUCCESS,
    _describe,
)
from .routes import RouteGroups, group_for, is_connection_failure

__all__ = ["BreakerSnapshot", "CircuitBreaker", "CircuitState", "Permit", "StateChange"]

log = logging.getLogger("resilient_session")


class CircuitState(str, enum.Enum):
    """Where a circuit stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_STATES = (CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN)


@dataclass(frozen=True)
class StateChange:
    """One transition of one circuit, as given to listeners.

    ``retry_in`` is the open wait when the circuit opened, else ``None``. With a shared store only the
    process that made the transition sees it.
    """

    host: str
    old: CircuitState
    new: CircuitState
    reason: str
    retry_in: float | None = None


@dataclass(frozen=True)
class BreakerSnapshot:
    """A circuit's state at one moment, for dashboards and health checks."""

    host: str
    state: CircuitState
    calls: int
    failures: int
    consecutive_failures: int
    trips: int
    retry_in: float

    @property
    def failure_rate(self) -> float:
        """Failures over calls in the window (0.0 when empty)."""
        return self.failures / self.calls if self.calls else 0.0


class Permit(NamedTuple):
    """Leave to make one call; hand it back to :meth:`CircuitBreaker.record`.

    ``probe`` is True when a circuit of the call (its origin's or its route group's) is half-open and
    this call is one of its probes. ``route`` is the route group's circuit (``None`` without route
    groups) and ``route_generation`` its generation.
    """

    host: str
    generation: int
    probe: bool = False
    route: str | None = None
    route_generation: int = 0


ErrorTypes = tuple[type[BaseException], ...]

# Evidence that the *host* is unavailable, not that one path is broken: the gateway statuses a proxy or
# load balancer answers when it cannot reach a healthy backend (Envoy's outlier detection ejects a host on
# consecutive 502/503/504 by default). A 500 or another 5xx is one route's application error; counting it
# would let one buggy endpoint refuse every healthy path of the host. Opt in with ``failure_statuses``.
DEFAULT_FAILURE_STATUSES: frozenset[int] = frozenset({502, 503, 504})
DEFAULT_FAILURE_EXCEPTIONS: ErrorTypes = (rexc.ConnectionError, rexc.Timeout, rexc.ChunkedEncodingError)


@dataclass(frozen=True, kw_only=True, repr=False)
class CircuitBreaker:
    """When to stop calling an upstream, and when to try it again.

    Closed, every call goes and its outcome is recorded. The circuit **opens** when, over the last
    ``window_size`` calls (at least ``minimum_calls`` of them), the share of failures reaches
    ``failure_rate_threshold``, or after ``consecutive_failures`` failures in a row. While open, calls
    fail at once with :class:`~resilient_session.CircuitOpenError` and no socket is opened. After the
    open wait the circuit is **half-open**: ``probes`` calls go through; when that many succeed it
    closes, and any failure reopens it with a longer wait.

    :param failure_rate_threshold: Share of failures (0 < x <= 1) that opens the circuit, or ``None``
        to judge by consecutive failures only. Default 0.5.
    :param window_size: Calls in the sliding window (count-based). Default 20.
    :param minimum_calls: Calls the window needs before its rate is judged. Default 10.
    :param consecutive_failures: Failures in a row that open the circuit whatever the rate, or
        ``None``. Default 5.
    :param open_wait: Seconds open before the first probe. Default 5.
    :param wait_multiplier: Each reopening without a successful close multiplies the wait. Default 2.
    :param max_open_wait: Cap on the grown wait (never below ``open_wait``). Default 60.
    :param probes: Calls let through while half-open, and successes needed to close. Default 1.
    :param probe_lease: Seconds after which a probe that never reported (its process died, say) no
        longer holds its slot. Default 30 (the default read timeout).
    :param failure_statuses: Final answers (after retries) that count as failures. Default: 502, 503
        and 504, the statuses that say the host (or the gateway in front of it) cannot serve; a 500 or
        another 5xx is one path's application error and counts as a success. A 429 is not a failure
        of the upstream; it spends the retry budget instead.
    :param failure_exceptions: Errors that count as failures. Default: connection errors, connect and
        read timeouts and broken bodies (the connection failed mid-answer). An error with a status
        (``raise_for_status``) is judged by its status; any other error (a bug, an invalid URL) is not
        counted either way.
    :param name: ``None`` (default) keeps one circuit per ``scheme://host:port``; a name makes every
        call through this policy share one circuit (per adapter or per named integration; with a shared
        store, per name across the fleet).
    :param routes: Route groups, each with a circuit of its own inside the origin's (or the named)
        circuit; see :mod:`resilient_session.policies.routes`. ``True`` (default): one group per first
        resource-like path segment below the session's ``base_url`` (``/v1/users``, ``/v1/reports``;
        ids and empty paths in group ``"*"``). A mapping of path prefixes or templates to group names
        (``{"/v1/reports": "reports", "/v1/users/{id}/orders": "orders"}``): those groups, every other
        path in ``"*"``. With groups, failure statuses, read timeouts and broken bodies count against the
        call's group only, and what says the host is unreachable (refused connections, DNS and TLS
        failures, connect timeouts) against the origin's circuit, which refuses every group while open.
        ``False``: one circuit per origin (or name) counting everything, as before route groups.
    :param store: Where the state lives: by default the process-wide
        :func:`~resilient_session.stores.default_store`, so every breaker of the process built without a
        store shares one circuit per key (sessions made per call included); a
        :class:`~resilient_session.RedisStore` shares it between processes; a
        :class:`~resilient_session.MemoryStore` of its own keeps it private.
    :param listeners: Callables given a :class:`StateChange` on every transition (also logged on the
        ``resilient_session`` logger: WARNING when opening, INFO otherwise). An exception in a listener is
        logged and never reaches the call.

    The policy is immutable and safe to share between threads, adapters and sessions; :meth:`new`
    returns a changed copy that keeps the store.
    """

    failure_rate_threshold: float | None = 0.5
    window_size: int = 20
    minimum_calls: int = 10
    consecutive_failures: int | None = 5
    open_wait: float = 5.0
    wait_multiplier: float = 2.0
    max_open_wait: float = 60.0
    probes: int = 1
    probe_lease: float = 30.0
    failure_statuses: Collection[int] = DEFAULT_FAILURE_STATUSES
    failure_exceptions: ErrorTypes = DEFAULT_FAILURE_EXCEPTIONS
    name: str | None = None
    store: StateStore = field(default_factory=default_store)
    listeners: Sequence[Callable[[StateChange], None]] = ()
    routes: bool | Mapping[str, str] | RouteGroups = True
    _acquire_args: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _record_args: tuple[float, ...] = field(init=False, repr=False, compare=False)

    #: The plain-data options and what each accepts (the integrations file's ``breaker`` table).
    OPTIONS: ClassVar[dict[str, Option]] = {
        "failure_rate_threshold": Option(
            "number", exclusive=True, maximum=1, nullable=True, false_is_none=True
        ),
        "window_size": Option("integer", minimum=1),
        "minimum_calls": Option("integer", minimum=1),
        "consecutive_failures": Option("integer", minimum=1, nullable=True, false_is_none=True),
        "open_wait": Option("number", exclusive=True),
        "wait_multiplier": Option("number", minimum=1),
        "max_open_wait": Option("number", exclusive=True),
        "probes": Option("integer", minimum=1),
        "probe_lease": Option("number", exclusive=True),
        "failure_statuses": Option("statuses"),
        "name": Option("string", nullable=True),
    }

    def __post_init__(self) -> None:
        check_attributes(self)
        rate = self.failure_rate_threshold
        if self.minimum_calls > self.window_size:
            raise ValueError("need minimum_calls <= window_size")
        if rate is None and self.consecutive_failures is None:
            raise ValueError("set failure_rate_threshold, consecutive_failures or both")
        object.__setattr__(self, "failure_statuses", frozenset(self.failure_statuses))
        object.__setattr__(self, "failure_exceptions", tuple(self.failure_exceptions))
        object.__setattr__(self, "listeners", tuple(self.listeners))
        if not isinstance(self.routes, (bool, RouteGroups)):
            object.__setattr__(self, "routes", RouteGroups.of(self.routes))
        # The ops take plain numbers (they also run as Lua); build them once, not per call.
        object.__setattr__(self, "_acquire_args", (float(self.probes), float(self.probe_lease)))
        record_args = (
            float(self.window_size),
            float(self.minimum_calls),
            2.0 if rate is None else float(rate),  # a share of failures never reaches 2
            float(self.consecutive_failures or 0),
            float(self.open_wait),
            float(self.wait_multiplier),
            float(max(self.max_open_wait, self.open_wait)),
            float(self.probes),
        )
        object.__setattr__(self, "_record_args", record_args)

    def new(self, **changes: Any) -> CircuitBreaker:
        """A copy with *changes* applied (the store is kept unless given)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        # Only what differs from the defaults: the full status set would drown the rest.
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.init and f.name != "store" and getattr(self, f.name) != f.default
        ]
        return f"{type(self).__name__}({', '.join([*changed, f'store={self.store!r}'])})"

    # -- the call path ---------------------------------------------------------------------------

    def key_for(self, url: str) -> str:
        """The circuit a call to *url* belongs to: the policy's name, or ``scheme://host:port``."""
        return self.name if self.name is not None else host_key(url)

    def route_key_for(self, url: str, base_url: str | None = None) -> str | None:
        """The route group's circuit of a call to *url* (``"https://api.example.com:443 /v1/users"``,
        ``"stripe reports"``), for :meth:`state` and :meth:`reset`; ``None`` when ``routes`` is False.
        *base_url* is the calling session's, which the default grouping starts below."""
        group = group_for(self.routes, url, base_url)
        return None if group is None else f"{self.key_for(url)} {group}"

    def acquire(
        self,
        host: str,
        request: requests.PreparedRequest | None = None,
        *,
        base_url: str | None = None,
    ) -> Permit:
        """Leave to call *host* now, or :class:`~resilient_session.CircuitOpenError`.

        With route groups, the call to *request*'s URL also needs its group's circuit closed
        (*base_url*: the calling session's). An open circuit is answered from a process-local hint,
        without touching the store.
        """
        return run_steps(self.store, self.acquire_steps(host, request, base_url=base_url))

    def acquire_steps(
        self,
        host: str,
        request: requests.PreparedRequest | None = None,
        *,
        base_url: str | None = None,
    ) -> OpSteps[Permit]:
        """:meth:`acquire` as the store ops it takes (see :data:`~resilient_session.stores.base.OpSteps`):
        an async caller awaits each with ``arun_steps``."""
        key = "breaker:" + host
        group = group_for(self.routes, request.url, base_url) if request is not None and request.url else None
        route = None if group is None else f"{host} {group}"
        store = self.store
        if store.hints:  # this process knows of an open circuit: maybe one of these
            remaining = self._known_open(key)
            if remaining > 0:
                raise _open_error(host, remaining, request=request)
            if route is not None:
                remaining = self._known_open("breaker:" + route)
                if remaining > 0:
                    raise _open_error(route, remaining, request=request)
        result = yield (_ACQUIRE, key, self._acquire_args)
        # _observe() when the answer says something this process does not know yet (spelled out: the
        # common answer, closed and unchanged with no hint to clear, costs no call).
        if result[2] == _OPEN or result[4] >= 0 or store.hints:
            self._observe(host, key, result)
        if not result[0]:
            raise _open_error(host, self._retry_in(result[3]), request=request)
        probe = result[2] == _HALF_OPEN
        if route is None:
            return Permit(host, int(result[1]), probe)
        route_key = "breaker:" + route
        routed = yield (_ACQUIRE, route_key, self._acquire_args)
        if routed[2] == _OPEN or routed[4] >= 0 or store.hints:
            self._observe(route, route_key, routed)
        if not routed[0]:
            if probe:  # hand back the origin's probe slot: this call will not be made
                yield (_RECORD, key, (result[1], _IGNORE, *self._record_args))
            raise _open_error(route, self._retry_in(routed[3]), request=request)
        return Permit(host, int(result[1]), probe or routed[2] == _HALF_OPEN, route, int(routed[1]))

    def check(
        self,
        host: str,
        *,
        method: str | None = None,
        url: str | None = None,
        base_url: str | None = None,
    ) -> None:
        """Raise :class:`~resilient_session.CircuitOpenError` if this process knows *host*'s circuit, or
        the circuit of *url*'s route group, is open; otherwise do nothing. Never asks the store and takes
        no probe slot, so it can run before the request is even built; :meth:`acquire` still decides."""
        if not self.store.hints:  # the common case: this process knows of no open circuit
            return
        remaining = self._known_open("breaker:" + host)
        if remaining > 0:
            raise _open_error(host, remaining, method=method, url=url)
        group = group_for(self.routes, url, base_url) if url else None
        if group is not None:
            route = f"{host} {group}"
            remaining = self._known_open("breaker:" + route)
            if remaining > 0:
                raise _open_error(route, remaining, method=method, url=url)

    def record(
        self,
        permit: Permit,
        *,
        response: requests.Response | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Record how the call made under *permit* ended (a response or an error).

        With a route group, a failure to reach the host counts against the origin's circuit only, and
        any other outcome against the group's, the origin's counting it as a success (the host answered).
        """
        run_steps(self.store, self.record_steps(permit, response=response, error=error))

    def record_steps(
        self,
        permit: Permit,
        *,
        response: requests.Response | None = None,
        error: BaseException | None = None,
    ) -> OpSteps[None]:
        """:meth:`record` as the store ops it takes."""
        outcome = self.classify(response=response, error=error)
        origin_outcome = outcome
        if permit.route is not None:
            connection = outcome == _FAILURE and error is not None and is_connection_failure(error)
            route_outcome = _IGNORE if connection else outcome
            if outcome == _FAILURE and not connection:
                origin_outcome = _SUCCESS
            route_key = "breaker:" + permit.route
            args = (float(permit.route_generation), route_outcome, *self._record_args)
            routed = yield (_RECORD, route_key, args)
            if routed[2] == _OPEN or routed[4] >= 0 or self.store.hints:
                self._observe(permit.route, route_key, routed)
        key = "breaker:" + permit.host
        result = yield (_RECORD, key, (float(permit.generation), origin_outcome, *self._record_args))
        if result[2] == _OPEN or result[4] >= 0 or self.store.hints:
            self._observe(permit.host, key, result)

    def gate(self, permit: Permit) -> Callable[[object, str], bool]:
        """A per-call retry gate: no retry for a probe (its first answer decides) or once this process
        knows the circuit is open (more attempts would only load an upstream declared down)."""
        if permit.probe:
            return _no_retry
        keys = ["breaker:" + permit.host]
        if permit.route is not None:
            keys.append("breaker:" + permit.route)

        def circuit_allows_retry(call: object, reason: str) -> bool:
            return all(self._known_open(key) <= 0 for key in keys)

        return circuit_allows_retry

    def classify(
        self, *, response: requests.Response | None = None, error: BaseException | None = None
    ) -> float:
        """0.0 success, 1.0 failure, 2.0 not counted."""
        if error is not None:
            if isinstance(error, (CircuitOpenError, BulkheadFullError)):
                return _IGNORE
            if isinstance(error, self.failure_exceptions):
                return _FAILURE
            status = getattr(error, "status", None)
            if status is None:
                status = getattr(getattr(error, "response", None), "status_code", None)
            if isinstance(status, int):
                return _FAILURE if status in self.failure_statuses else _SUCCESS
            return _IGNORE
        if response is not None and response.status_code in self.failure_statuses:
            return _FAILURE
        return _SUCCESS

    # -- inspection and control ------------------------------------------------------------------

    def state(self, host: str) -> BreakerSnapshot:
        """The circuit of *host* now (``host`` as returned by :meth:`key_for` or :meth:`route_key_for`)."""
        st, _, until, calls, failures, consecutive, trips = self.store.run(_SNAPSHOT, "breaker:" + host, ())
        retry_in = self._retry_in(until) if st == _OPEN else 0.0
        return BreakerSnapshot(
            host, _STATES[int(st)], int(calls), int(failures), int(consecutive), int(trips), retry_in
        )

    def reset(self, host: str) -> None:
        """Close the circuit of *host* (as for :meth:`state`) and forget its history (calls in flight are
        not counted)."""
        key = "breaker:" + host
        self.store.hints.pop(key, None)
        self._observe(host, key, self.store.run(_RESET, key, ()))

    # -- events ----------------------------------------------------------------------------------

    def _known_open(self, key: str) -> float:
        """Seconds the circuit is still open as far as this process knows (<= 0: ask the store)."""
        until = self.store.hints.get(key)
        return 0.0 if until is None else self._retry_in(until)

    def _retry_in(self, until: float) -> float:
        """Seconds from now to *until* (a time the store answered), in ``[0, max_open_wait]``: no store
        content, however corrupt, keeps a circuit open longer than the policy's own longest wait."""
        longest = max(self.max_open_wait, self.open_wait)
        return clamp(until - self.store.clock(), 0.0, longest, 0.0)

    def _observe(self, host: str, key: str, result: Result) -> None:
        # Every answer from the store refreshes what this process knows about the circuit.
        if result[2] == _OPEN:
            self.store.hints[key] = self.store.clock() + self._retry_in(result[3])
        else:
            self.store.hints.pop(key, None)
        if result[4] >= 0:
            self._emit(host, result)

    def _emit(self, host: str, result: Result) -> None:
        old, new = _STATES[int(result[4])], _STATES[int(result[2])]
        reason = _describe(int(result[5]), result[6], result[7])
        retry_in = None
        if new is CircuitState.OPEN:
            retry_in = self._retry_in(result[3])
            reason_text = f"{reason}; next probe in {retry_in:.3g}s"
        else:
            reason_text = reason
        log.log(
            logging.WARNING if new is CircuitState.OPEN else logging.INFO,
            "circuit %s: %s -> %s (%s)",
            host,
            old.value,
            new.value,
            reason_text,
            extra={"host": host, "old_state": old.value, "new_state": new.value, "reason": reason},
        )
        change = StateChange(host, old, new, reason, retry_in)
        call = current_call()
        if call is not None and call.observer is not None:
            # The session whose call made the transition tells its own ``events`` and span.
            call.observer.circuit_changed(call, change)
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:
                log.exception("circuit listener %r failed on %s", listener, host)


def _no_retry(call: object, reason: str) -> bool:
    return False


def _open_error(
    host: str,
    retry_in: float,
    *,
    request: requests.PreparedRequest | None = None,
    method: str | None = None,
    url: str | None = None,
) -> CircuitOpenError:
    return CircuitOpenError(
        f"circuit open for {host}; next probe in {retry_in:.3f}s",
        host=host,
        retry_in=retry_in,
        request=request,
        method=method,
        url=url,
    )
