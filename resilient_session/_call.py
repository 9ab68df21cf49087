"""State of one logical call, shared by the session, its adapters and the attempt loop.

A logical call is one ``session.request(...)``: every attempt, backoff sleep and redirect hop it makes. The
session hands the state to the adapter with the request itself (:func:`carry`, read back with
:func:`carried`), as httpx carries a request's timeouts in ``request.extensions``. It is also current in a
:class:`contextvars.ContextVar` for the length of the call (each thread and each asyncio task sees its
own), read only where requests' API passes nothing of the call along:

- ``ResilientSession.send``: a redirect hop (requests' ``resolve_redirects`` sends a copy of the request)
  or a re-send from a hook belongs to the call in progress;
- ``ResilientSession.get_adapter``: requests' ``Session.send`` looks the adapter up by URL alone;
- the attempt loop, for an adapter called directly by a response hook (an auth handler re-sending through
  ``response.connection``), or for a ``PreparedRequest`` the caller handed to ``send()`` (other threads
  may be sending the same object: it carries nothing), and the deadline-aware pools, which urllib3 is
  handed nothing of the call;
- a nested call made while preparing the request (an OAuth2 token fetch, :func:`nested`), the log filter
  (:mod:`resilient_session.observe.log_context`) and the request id
  (:mod:`resilient_session.observe.request_id`), the circuit breaker's state-change notification, and
  the Redis store bounding each operation by the time left;
- ``install()``'s plain sessions, and the httpx twin, whose transports and ``Retry`` are handed a request
  only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ._redact import redact_url
from ._watchdog import WATCHDOG

#: Clock used for deadlines; monotonic so wall-clock jumps never shorten or stretch a call.
clock: Callable[[], float] = time.monotonic

#: A gate decides whether one more retry may happen; it receives the call and the reason
#: (``"status"``, ``"timeout"``, ``"connect"``, ``"read"``, ``"body"``) and returns False to veto.
RetryGate = Callable[["CallState", str], bool]


class CallObserver:
    """Told what happens inside one call, for logs, events and traces; every method here does nothing.

    The adapter, its connection pools and the retry policy notify ``CallState.observer`` only when one
    is set, so a call nobody observes pays one attribute check per step.
    """

    def attempt(self, call: CallState, headers: Any, *, on_wire: bool) -> None:
        """An attempt is about to go out with *headers*: from the adapter's send (``on_wire=False``,
        also the only signal under ``responses`` mocks) or from the pool, once per urllib3 retry."""

    def answered(self, call: CallState, status: int) -> None:
        """The current attempt got a response with *status* (the body may still be unread)."""

    def retry(self, call: CallState, reason: str, delay: float, status: int | None) -> None:
        """The current attempt failed (*reason*) and the next one goes after *delay* seconds."""

    def retry_refused(self, call: CallState, gate: RetryGate, reason: str) -> None:
        """*gate* (a retry budget, a circuit breaker) vetoed the retry."""

    def circuit(self, call: CallState, state: str) -> None:
        """The circuit breaker let the call through in *state* (``"closed"`` or ``"half_open"``)."""

    def circuit_changed(self, call: CallState, change: Any) -> None:
        """The call moved its circuit to another state (*change* is a ``StateChange``)."""


@dataclass(slots=True)
class Attempt:
    """One attempt the attempt loop sends, as the deadline-aware pool saw it."""

    #: The urllib3 pool and the URL (as urllib3 got it) the attempt went to.
    pool: Any = None
    url: str | None = None
    #: urllib3 sent it once, its own retries off: the loop applies the retry policy to its outcome.
    single: bool = False


@dataclass(slots=True)
class CallState:
    """What is known about the logical call in progress."""

    method: str
    raw_url: str
    started: float = field(default_factory=lambda: clock())
    deadline_at: float | None = None
    default_timeout: Any = None
    owner: object | None = None
    attempts: int = 1
    last_status: int | None = None
    retry_gates: list[RetryGate] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    observer: CallObserver | None = None
    #: The first send of the call has begun (later sends are redirect hops or re-sends from hooks).
    sent: bool = False
    #: The session is inside requests' ``Session.send`` and has not reached the adapter yet; the adapter
    #: clears it (``get_adapter`` only reads it).
    sending: bool = False
    #: The attempt being sent, while the attempt loop waits for its transport (see :class:`Attempt`).
    attempt: Attempt | None = None
    #: The owner's retry policy, standing in for the untouched default ``max_retries`` of an adapter the
    #: owner may not change (a plain session's, under ``install()``); ``None``: the adapter's own.
    retry_standin: Any = None
    # Watchdog bookkeeping (see _watchdog): registered, deadline passed, connection being read.
    watched: bool = False
    expired: bool = False
    connection: Any = None
    #: Method and URL of the hop being sent: a redirect changes the URL, a 303 the method too.
    hop: tuple[str, str] | None = None
    #: A body that broke off after the response hooks (``_attempts.BrokenAfterHooks``): the session sends
    #: the hop again, and the adapter continues the retry chain of the attempt that broke.
    broken_after_hooks: Any = None

    @classmethod
    def begin(cls, method: str | None, url: str | None, **kwargs: Any) -> CallState:
        """Start the state of a new call."""
        return cls(method=(method or "GET").upper(), raw_url=url or "", **kwargs)

    @property
    def url(self) -> str:
        """The call's URL with credentials redacted (computed only when a log line or error needs it)."""
        redacted = self.extras.get("redacted_url")
        if redacted is None:
            redacted = self.extras["redacted_url"] = redact_url(self.raw_url)
        return str(redacted)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), or ``None`` when there is none."""
        return None if self.deadline_at is None else self.deadline_at - clock()

    def tighten_deadline(self, seconds: float | None) -> None:
        """Make the deadline at most *seconds* from now (never extends it)."""
        if seconds is None:
            return
        candidate = clock() + seconds
        if self.deadline_at is None or candidate < self.deadline_at:
            self.deadline_at = candidate
            if self.watched:
                WATCHDOG.watch(self)

    def watch(self) -> None:
        """From now until :meth:`unwatch`, the deadline also ends a read the call is blocked in."""
        if self.deadline_at is not None and not self.watched:
            WATCHDOG.watch(self)

    def unwatch(self) -> None:
        """Stop the watchdog from touching this call's sockets (its response belongs to the caller now)."""
        if self.watched:
            WATCHDOG.unwatch(self)

    def cut_off(self) -> bool:
        """True once the watchdog ended the call at its deadline: what a read returned since is suspect."""
        return self.expired

    def deadline_passed(self, slack: float = 0.0) -> bool:
        """True when the deadline is set and no more than *slack* seconds remain."""
        if self.expired:
            return True
        remaining = self.remaining()
        return remaining is not None and remaining <= slack

    def elapsed(self) -> float:
        """Seconds since the call started."""
        return clock() - self.started

    def may_retry(self, reason: str) -> bool:
        """Ask every retry gate (e.g. a retry budget) whether one more retry may go."""
        for gate in self.retry_gates:
            if not gate(self, reason):
                if self.observer is not None:
                    self.observer.retry_refused(self, gate, reason)
                return False
        return True


_current: ContextVar[CallState | None] = ContextVar("resilient_session_call", default=None)


#: The state of the call running in this context, or ``None`` outside a call. (The ContextVar's own
#: bound methods: these run several times per request, and a Python-level wrapper doubles their cost.)
current_call: Callable[[], CallState | None] = _current.get
#: Make a state current; returns the token :func:`leave` takes.
enter = _current.set
#: Restore what was current before :func:`enter`.
leave = _current.reset


#: The attribute of a ``PreparedRequest`` the call travels in, from the session to the adapter.
_CARRIED = "resilient_session_call"


def carry(request: object, call: CallState) -> None:
    """Hand *call* to whoever sends *request* (a redirect hop's copy does not carry it)."""
    request.__dict__[_CARRIED] = call


def carried(request: object) -> CallState | None:
    """The call *request* is sent for, when a session handed it over with :func:`carry`."""
    found = getattr(request, "__dict__", {}).get(_CARRIED)
    return found if isinstance(found, CallState) else None


def drop(request: object) -> None:
    """*request* carries no call any more (the send is over: it stays with the response, and may be kept)."""
    getattr(request, "__dict__", {}).pop(_CARRIED, None)


@contextmanager
def nested(method: str, url: str) -> Iterator[CallState]:
    """A call made on behalf of the current one (an OAuth2 token request): its own state, no owner (so
    no breaker or budget of the outer session), and the outer call's deadline, watched like any other."""
    outer = current_call()
    state = CallState.begin(method, url, deadline_at=outer.deadline_at if outer is not None else None)
    state.watch()
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)
        state.unwatch()


@contextmanager
def active(state: CallState) -> Iterator[CallState]:
    """Make *state* the current call for the duration of the ``with`` block."""
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)
