"""Rate limit: calls shaped to an upstream's quota before they are sent, the quota given or learned.

The state of a limit is a GCRA schedule (the theoretical arrival time of the next call, ``tat``) kept in a
:mod:`~resilient_session.stores` store, so every session and thread of the process, and with a
:class:`~resilient_session.RedisStore` every process of the fleet, draws from one schedule. Taking a
slot is a reservation: the store hands each caller, in the order they reach it, the time its call may go,
and the caller sleeps until then (first come, first served, no polling). A call whose slot lies beyond
its time left is refused at once with :class:`~resilient_session.errors.QuotaExceededError`, nothing sent.

Three sources set the rate, the lowest wins:

* the static quota given (``calls`` per ``per`` seconds);
* the quota the upstream announces in its headers (see :mod:`.quota_headers`), used at ``headroom``
  of its value; by default it may only lower a static quota (``learn_upwards``);
* with ``adaptive``, after the upstream answered 429: the AWS SDKs' adaptive retry mode, a CUBIC
  controlled rate (see :data:`CUBIC_BETA` and :data:`CUBIC_C`) that rests below the rate refused
  (:data:`CUBIC_PLATEAU`, :data:`CUBIC_PLATEAU_SECONDS`) before it probes above it.

An upstream that says no call is left (``remaining`` 0) or answers with ``Retry-After`` holds every
call back until the reset, through the same store. A wait in whole seconds is read as rounded up:
when the window is known (``RateLimit-Policy``'s ``w``) and a window's start has been seen (the count
left jumped back up), the hold ends at the window's next boundary instead, if that lies within the last
second of the announced wait (see :func:`_window_end`); and the same wait answered to calls sent before
the hold began does not lengthen it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .._hosts import host_key
from .._numbers import MAX_WAIT
from .._options import Option, check_attributes
from ..stores.base import AtomicOp, OpSteps, Result, StateStore, run_steps
from ..stores.memory import default_store
from .quota_headers import Quota

__all__ = [
    "CUBIC_BETA",
    "CUBIC_C",
    "CUBIC_PLATEAU",
    "CUBIC_PLATEAU_SECONDS",
    "QuotaSlot",
    "QuotaState",
    "RateLimit",
]

log = logging.getLogger("resilient_session")

#: CUBIC's multiplicative decrease: after a 429 the rate drops to this share of the rate measured
#: when it came (the AWS SDKs' adaptive mode, and RFC 8312's value).
CUBIC_BETA = 0.7
#: CUBIC's scaling constant, in calls/s per s³: the rate climbs back to its last maximum in
#: ``K = cbrt(max * (1 - beta) / C)`` seconds (5.3 s from 200/s), flat near it, then probes above.
CUBIC_C = 0.4
#: Once a 429 has shown where the upstream's ceiling is (the rate ``wmax`` it came at), the climb back
#: stops at this share of it ...
CUBIC_PLATEAU = 0.97
#: ... for this many seconds after it would have reached ``wmax``, then probes above as CUBIC does
#: (a quota seldom changes, and each probe past it costs a 429 and a held window).
CUBIC_PLATEAU_SECONDS = 20.0
#: The adaptive rate never drops below this many calls per second (the AWS SDKs' floor).
MIN_RATE = 0.5
#: The measured sending rate is sampled every this many seconds and smoothed (AWS's values) ...
MEASURE_EVERY = 0.5
#: ... a new sample weighing this much against the last estimate.
MEASURE_SMOOTH = 0.8
#: A limit is re-announced in the log (WARNING) after this many seconds without reaching it.
_LOG_REARM = 60.0
# A schedule mark read back from Redis went through '%.17g': equal within this, it is the same mark.
_SAME_MARK = 1e-6


@dataclass(frozen=True)
class QuotaSlot:
    """What taking a slot gave: ``granted`` (False: it would not come within the wait allowed), the
    seconds to ``wait`` before sending (or, refused, until a slot would be free), the ``rate`` in force
    (calls/s, ``None`` when unlimited), the seconds the upstream asked every call to hold back, and
    ``mark``, where the schedule stood once this slot was reserved (the store's clock; 0 when none was):
    a slot given back moves the schedule back only while it is still the last one reserved."""

    granted: bool
    wait: float
    rate: float | None
    hold: float
    mark: float = 0.0


@dataclass(frozen=True)
class QuotaState:
    """The state of one limit: the ``rate`` in force and its parts, and the time held back."""

    rate: float | None
    static_rate: float | None
    learned_rate: float | None
    adaptive_rate: float | None
    hold: float


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """How fast calls may go to an integration (or a host), shared by every call of the process, and
    with a :class:`~resilient_session.RedisStore` of the fleet.

    Calls are spaced evenly at the rate in force, with at most ``burst`` sent at once; a call waits
    for its turn (in arrival order) as long as the wait fits in its deadline and ``max_wait``,
    otherwise it fails at once with :class:`~resilient_session.errors.QuotaExceededError`, whose
    ``retry_after`` says when a slot would be free. Nothing is sent for a refused call.

    :param calls: The static quota: calls allowed per ``per`` seconds. ``None`` (default): no static
        quota, the limit is only what is learned.
    :param per: The quota's window in seconds. Default 1.
    :param burst: Calls that may go at once after a quiet spell. Default 1 (evenly spaced: safe
        against an upstream counting in fixed windows, which a larger burst can overrun).
    :param learn: Read the quota the upstream announces (``RateLimit-Policy``/``RateLimit``,
        ``X-RateLimit-*``, ``Retry-After``) and hold every call back while it says none is left.
        Default True.
    :param learn_upwards: Let a learned quota raise the static one. Default False: a learned quota
        only lowers it.
    :param headroom: The share of a learned quota used (the rest absorbs network jitter and calls in
        flight). Default 0.95.
    :param adaptive: After a 429, lower the rate and probe back up (CUBIC, as the AWS SDKs'
        adaptive retry mode, resting just below the refused rate before probing above it), for
        upstreams that announce nothing. Default True.
    :param max_wait: The longest a call waits for its slot when it has no deadline (with one, its time
        left bounds the wait too). Default 60.
    :param partition_header: A request header (an API key's, ``Authorization``) whose value splits the
        limit: one schedule per value, as upstreams count per credential. The value is hashed before
        it names a key; it never reaches a log line or a store in clear. Default ``None``.
    :param name: ``None`` (default) keeps one limit per ``scheme://host:port``; a name (an
        integration's) makes every call through this policy share one.
    :param store: Where the schedule lives: by default the process-wide
        :func:`~resilient_session.stores.default_store`, a :class:`~resilient_session.RedisStore` to
        share it across processes.

    The policy is immutable and safe to share between threads; :meth:`new` returns a changed copy.
    """

    calls: float | None = None
    per: float = 1.0
    burst: int = 1
    learn: bool = True
    learn_upwards: bool = False
    headroom: float = 0.95
    adaptive: bool = True
    max_wait: float = 60.0
    partition_header: str | None = None
    name: str | None = None
    store: StateStore = field(default_factory=default_store)

    #: The plain-data options and what each accepts (the integrations file's ``rate_limit`` table).
    OPTIONS: ClassVar[dict[str, Option]] = {
        "calls": Option("number", exclusive=True, nullable=True),
        "per": Option("number", exclusive=True, maximum=MAX_WAIT),
        "burst": Option("integer", minimum=1),
        "learn": Option("boolean"),
        "learn_upwards": Option("boolean"),
        "headroom": Option("number", exclusive=True, maximum=1.0),
        "adaptive": Option("boolean"),
        "max_wait": Option("number", maximum=MAX_WAIT),
        "partition_header": Option("header", nullable=True),
        "name": Option("string", nullable=True),
    }

    def __post_init__(self) -> None:
        check_attributes(self)

    def new(self, **changes: Any) -> RateLimit:
        """A copy with *changes* applied (the store is kept unless given)."""
        return dataclasses.replace(self, **changes)

    @property
    def static_rate(self) -> float | None:
        """The static quota in calls per second, or ``None``."""
        return None if self.calls is None else self.calls / self.per

    def key_for(self, url: str, headers: Mapping[str, str] | None = None) -> str:
        """The schedule a call to *url* with *headers* draws from: the name (or ``scheme://host:port``),
        and a hash of the partition header's value when one is configured and sent."""
        key = self.name if self.name is not None else host_key(url)
        if self.partition_header is not None and headers is not None:
            value = headers.get(self.partition_header)
            if value:
                raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
                key += "#" + hashlib.sha256(raw).hexdigest()[:16]
        return key

    def acquire(self, key: str, max_wait: float | None = None, *, after: float = 0.0) -> QuotaSlot:
        """Reserve the first slot of *key* at least *after* seconds from now, if it comes within
        *max_wait* seconds (default and upper bound: ``max_wait``); the caller sleeps ``wait`` before
        sending. Nothing is reserved when the slot is refused."""
        return run_steps(self.store, self.acquire_steps(key, max_wait, after=after))

    def acquire_steps(
        self, key: str, max_wait: float | None = None, *, after: float = 0.0
    ) -> OpSteps[QuotaSlot]:
        """:meth:`acquire` as the store op it takes (see :data:`~resilient_session.stores.base.OpSteps`)."""
        bound = self.max_wait if max_wait is None else max(0.0, min(max_wait, self.max_wait))
        granted, wait, rate, hold, mark = yield (
            _ACQUIRE,
            "quota:" + key,
            (self.static_rate or 0.0, float(self.burst), bound, float(self.learn_upwards), max(0.0, after)),
        )
        slot = QuotaSlot(bool(granted), max(0.0, wait), rate if rate > 0 else None, max(0.0, hold), mark)
        if slot.wait > 0 or not slot.granted:
            self._log_reached(key, slot)
        return slot

    def release(self, key: str, slot: QuotaSlot) -> bool:
        """Give back *slot*, reserved by :meth:`acquire` and not used (its call ended before it sent).
        The schedule moves back by one interval when *slot* is still the last one reserved, so the next
        caller takes it; a slot with later ones reserved after it stays spent (reusing it would put two
        calls in one interval). True when it was given back."""
        return run_steps(self.store, self.release_steps(key, slot))

    def release_steps(self, key: str, slot: QuotaSlot) -> OpSteps[bool]:
        """:meth:`release` as the store op it takes (none for a refused slot, or one of no rate)."""
        if not (slot.granted and slot.rate and slot.mark):
            return False
        (released,) = yield (_RELEASE, "quota:" + key, (1.0 / slot.rate, slot.mark))
        return bool(released)

    def learn_from(self, key: str, quota: Quota | None, status: int, age: float = 0.0) -> None:
        """Record what a response to a call of *key* said: its *quota* (parsed headers) and *status*;
        *age* is how long ago the call was sent (a 429 to a call sent before the last slow-down does
        not slow down again)."""
        run_steps(self.store, self.learn_steps(key, quota, status, age))

    def learn_steps(self, key: str, quota: Quota | None, status: int, age: float = 0.0) -> OpSteps[None]:
        """:meth:`learn_from` as the store op it takes (none when the answer says nothing to learn)."""
        throttled = status == 429 and self.adaptive
        if quota is None and not throttled:
            return
        limit = window = reset = hold = remaining = -1.0
        if quota is not None and self.learn:
            if quota.remaining is not None:
                remaining = quota.remaining
            if quota.limit is not None:
                limit = quota.limit
                window = quota.window if quota.window is not None else -1.0
            if quota.reset is not None:
                reset = quota.reset
            if quota.exhausted and quota.reset is not None:
                hold = quota.reset
            if quota.retry_after is not None:
                hold = max(hold, quota.retry_after)
        if limit < 0 and hold < 0 and not throttled:
            return
        yield (
            _LEARN,
            "quota:" + key,
            (limit, window, reset, hold, float(throttled), max(0.0, age), self.headroom, remaining),
        )

    def state(self, key: str) -> QuotaState:
        """The rate in force for *key* now, its parts, and the seconds every call is held back."""
        return run_steps(self.store, self.state_steps(key))

    def state_steps(self, key: str) -> OpSteps[QuotaState]:
        """:meth:`state` as the store op it takes."""
        static = self.static_rate
        learned, adaptive, hold = yield (_SNAPSHOT, "quota:" + key, ())
        if learned > 0 and static is not None and not self.learn_upwards:
            rate: float | None = min(static, learned)
        elif learned > 0:
            rate = learned
        else:
            rate = static
        if adaptive > 0:
            rate = adaptive if rate is None else min(rate, adaptive)
        return QuotaState(
            rate=rate,
            static_rate=static,
            learned_rate=learned if learned > 0 else None,
            adaptive_rate=adaptive if adaptive > 0 else None,
            hold=max(0.0, hold),
        )

    def _log_reached(self, key: str, slot: QuotaSlot) -> None:
        # One WARNING when calls first have to wait (or are refused), then quiet until the limit has
        # not been reached for _LOG_REARM seconds: at the limit, every call waits.
        hint = "quota-log:" + key
        now = self.store.clock()
        last = self.store.hints.get(hint)
        self.store.hints[hint] = now
        if last is not None and now - last < _LOG_REARM:
            return
        rate = f"{slot.rate:.4g} calls/s" if slot.rate is not None else "held back by the upstream"
        log.warning(
            "rate limit of %s reached (%s): calls now wait for their turn%s",
            key.split("#", 1)[0],
            rate,
            "" if slot.granted else f"; a call was refused (a slot in {slot.wait:.3g}s)",
            extra={"quota": key.split("#", 1)[0], "rate": slot.rate, "reason": "rate limit reached"},
        )


# -- the atomic ops -----------------------------------------------------------------------------------
#
# State per key: tat (GCRA: when the schedule's next slot begins), till (no call before this time: the
# upstream's reset or Retry-After), lrate/lwin (learned rate; longest reset seen, the window estimate when
# the headers state none), wmax/tthr (CUBIC: rate before the last slow-down and when it happened; 0 while
# adaptive mode has not been switched on), ms/mc/mr (measured sending rate: sample start, calls since,
# smoothed estimate), lr/wb/wcut (the count left last seen, -1 for none; when a window was seen to
# begin; the end of a hold cut short at a window boundary), hset (when the hold in force began). Each
# op has a Lua twin in stores/lua/quota_*.lua, tested against it.

_FRESH = {
    "tat": 0.0,
    "till": 0.0,
    "lrate": 0.0,
    "lwin": 0.0,
    "wmax": 0.0,
    "tthr": 0.0,
    "ms": 0.0,
    "mc": 0.0,
    "mr": 0.0,
    "lr": -1.0,
    "wb": 0.0,
    "wcut": 0.0,
    "hset": 0.0,
}


def _load(state: dict[str, float] | None) -> dict[str, float]:
    return dict(_FRESH) if state is None else dict(state)


def _cubic(s: Mapping[str, float], now: float) -> float:
    """The adaptive rate at *now* (0 while adaptive mode is off)."""
    wmax = s["wmax"]
    if wmax <= 0:
        return 0.0
    k: float = (wmax * (1 - CUBIC_BETA) / CUBIC_C) ** (1 / 3)
    since = max(0.0, now - s["tthr"])
    rate: float
    if since <= k + CUBIC_PLATEAU_SECONDS:
        # Concave up towards wmax, flat just below it: wmax is a rate the upstream refused.
        rate = min(CUBIC_C * (since - k) ** 3 + wmax, CUBIC_PLATEAU * wmax)
    else:
        rate = CUBIC_PLATEAU * wmax + CUBIC_C * (since - k - CUBIC_PLATEAU_SECONDS) ** 3
    if s["mr"] > 0:
        rate = min(rate, 2 * s["mr"])  # never far above what is actually sent (AWS's rule)
    return max(MIN_RATE, rate)


def _rate(s: Mapping[str, float], now: float, static: float, learn_up: float) -> float:
    """The rate in force (calls/s), 0 for unlimited."""
    rate = static
    if s["lrate"] > 0:
        rate = s["lrate"] if rate <= 0 or learn_up else min(rate, s["lrate"])
    adaptive = _cubic(s, now)
    if adaptive > 0:
        rate = adaptive if rate <= 0 else min(rate, adaptive)
    return rate


def _window_end(s: Mapping[str, float], now: float, hold: float, window: float) -> float:
    """When a hold of *hold* seconds asked at *now* ends: ``now + hold``, or the next boundary of the
    *window* (seconds) whose start was seen, when *hold* is whole seconds (a rounded-up delta: the
    reset lies in its last second) and that boundary lies in that last second."""
    if s["wb"] <= 0 or window <= 0 or hold < 1 or hold != math.floor(hold):
        return now + hold
    boundary = s["wb"] + (math.floor((now - s["wb"]) / window) + 1) * window
    if now + hold - 1 < boundary < now + hold:
        return boundary
    return now + hold


def _acquire_py(
    state: dict[str, float] | None, args: Sequence[float], now: float
) -> tuple[dict[str, float] | None, Result]:
    static, burst, max_wait, learn_up, after = args
    s = _load(state)
    rate = _rate(s, now, static, learn_up)
    hold = max(0.0, s["till"] - now)
    if rate <= 0:
        wait = max(hold, after)
        if wait > max_wait:
            return state, (0.0, wait, rate, hold, 0.0)
    else:
        interval = 1.0 / rate
        base = max(s["tat"], now + after, s["till"])
        wait = max(0.0, base + interval - burst * interval - now, hold, after)
        if wait < 1e-6:
            wait = 0.0  # rounding of the clock's float, not a wait
        if wait > max_wait:
            return state, (0.0, wait, rate, hold, 0.0)
        s["tat"] = base + interval
    # The measured sending rate, for the adaptive mode.
    if s["ms"] <= 0 or s["ms"] > now:
        s["ms"], s["mc"] = now, 0.0
    s["mc"] += 1
    if now - s["ms"] >= MEASURE_EVERY:
        sample = s["mc"] / (now - s["ms"])
        s["mr"] = sample if s["mr"] <= 0 else MEASURE_SMOOTH * sample + (1 - MEASURE_SMOOTH) * s["mr"]
        s["ms"], s["mc"] = now, 0.0
    return s, (1.0, wait, rate, hold, s["tat"] if rate > 0 else 0.0)


def _learn_py(
    state: dict[str, float] | None, args: Sequence[float], now: float
) -> tuple[dict[str, float] | None, Result]:
    limit, window, reset, hold, throttled, age, headroom, remaining = args
    s = _load(state)
    sent = now - age
    if hold > 0 and s["wcut"] > 0 and s["wcut"] <= sent < s["wcut"] + 1:
        # A call sent as a hold cut short ended was told to hold again: the boundary was wrong.
        s["wb"] = s["wcut"] = 0.0
    if remaining >= 0:
        # A window begins where the count left jumps back up (or the first answer is a full window's).
        if limit > 0 and (remaining > s["lr"] + limit / 2 if s["lr"] >= 0 else remaining >= limit - 1):
            s["wb"] = now  # the call was counted in the new window: it began no later than now
        s["lr"] = remaining
    if limit > 0:
        if reset > s["lwin"]:
            s["lwin"] = reset
        span = window if window > 0 else s["lwin"]
        if span > 0:
            s["lrate"] = headroom * limit / span
    if hold > 0:
        end = _window_end(s, now, hold, window)
        if end < now + hold:
            s["wcut"] = max(s["wcut"], end)
        if s["till"] <= now:
            s["hset"] = now
            s["till"] = end
        elif not (sent < s["hset"] and hold >= 1 and hold == math.floor(hold)):
            s["till"] = max(s["till"], end)
        # else: a rounded-up wait answered to a call sent before the hold in force began, an echo of
        # the same spent window: its bound is no tighter than the first one's, and no later reset.
    if throttled > 0 and (s["wmax"] <= 0 or sent >= s["tthr"]):
        # Once per overload: a 429 to a call sent before the last slow-down (and its hold) is its echo.
        # Slowed down from what was measured (one sample at least: a rate guessed from the first few
        # calls could be anything); until then the upstream's Retry-After alone holds calls back.
        current = _cubic(s, now)
        measured = s["mr"]
        base = min(r for r in (current, measured) if r > 0) if current > 0 or measured > 0 else 0.0
        if base > 0:
            # The climb starts when the hold ends; 429s to calls sent before then are this overload's.
            s["wmax"] = base
            s["tthr"] = max(now, s["till"])
    return s, (s["lrate"], _cubic(s, now), max(0.0, s["till"] - now))


def _release_py(
    state: dict[str, float] | None, args: Sequence[float], now: float
) -> tuple[dict[str, float] | None, Result]:
    interval, mark = args
    if state is None or interval <= 0 or abs(state["tat"] - mark) > _SAME_MARK:
        return state, (0.0,)  # gone, or slots were reserved after it: it stays spent
    s = dict(state)
    s["tat"] = mark - interval
    if s["mc"] > 0:
        s["mc"] -= 1
    return s, (1.0,)


def _snapshot_py(
    state: dict[str, float] | None, args: Sequence[float], now: float
) -> tuple[dict[str, float] | None, Result]:
    s = _load(state)
    return state, (s["lrate"], _cubic(s, now), max(0.0, s["till"] - now))


_ACQUIRE = AtomicOp("quota_acquire", _acquire_py, lua_files=("quota_load.lua", "quota_acquire.lua"))
_LEARN = AtomicOp("quota_learn", _learn_py, lua_files=("quota_load.lua", "quota_learn.lua"))
_SNAPSHOT = AtomicOp("quota_snapshot", _snapshot_py, lua_files=("quota_load.lua", "quota_snapshot.lua"))
_RELEASE = AtomicOp("quota_release", _release_py, lua_files=("quota_load.lua", "quota_release.lua"))


def rate_text(rate: float | None) -> str:
    """*rate* (calls/s) as people say it: ``"100/min"``, ``"5/s"``, ``"unlimited"``."""
    if rate is None or not math.isfinite(rate) or rate <= 0:
        return "unlimited"
    for unit, seconds in (("s", 1.0), ("min", 60.0), ("h", 3600.0)):
        count = rate * seconds
        if count >= 1:
            return f"{count:.4g}/{unit}"
    return f"{rate * 86400:.4g}/day"
