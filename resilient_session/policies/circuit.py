"""The circuit breaker's state machine: one circuit's state and the atomic ops that move it.

The same machine is written twice: here in Python, run by the stores inside this process, and in Lua
(``stores/lua/breaker_*.lua``), run atomically by :class:`~resilient_session.stores.RedisStore`; the two are
tested against each other. The policy (:class:`~resilient_session.policies.CircuitBreaker`) decides what a
failure is and words what happened; this module only counts and moves between states.

Every op returns (admitted, generation, state, until, old_state or -1, reason, detail_a, detail_b).
``until`` is the end of the open wait when open, the end of the probe lease when a half-open circuit
turns a call away, else 0. The generation changes on every transition: an outcome recorded under an
older generation (a call that started before the circuit opened, say) is ignored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ..stores.base import AtomicOp, Result

_CLOSED, _OPEN, _HALF_OPEN = 0, 1, 2
_SUCCESS, _FAILURE, _IGNORE = 0.0, 1.0, 2.0

# Why a transition happened; the ops return a code and up to two numbers, the policy words them.
_R_CONSECUTIVE, _R_RATE, _R_WAIT_OVER, _R_PROBE_FAILED, _R_PROBES_OK, _R_RESET = 1, 2, 3, 4, 5, 6


def _describe(code: int, a: float, b: float) -> str:
    if code == _R_CONSECUTIVE:
        return f"{int(a)} consecutive failures"
    if code == _R_RATE:
        return f"failure rate {a:.0%} over the last {int(b)} calls"
    if code == _R_WAIT_OVER:
        return "open wait over; probing"
    if code == _R_PROBE_FAILED:
        return "probe failed"
    if code == _R_PROBES_OK:
        return f"{int(a)} probe(s) succeeded"
    return "reset"


class _Circuit:
    __slots__ = (
        "consecutive",
        "failures",
        "gen",
        "probe_at",
        "probes",
        "probes_ok",
        "st",
        "trips",
        "until",
        "window",
    )

    def __init__(self) -> None:
        self.st = _CLOSED
        self.gen = 0
        self.window: deque[bool] = deque()
        self.failures = 0
        self.consecutive = 0
        self.until = 0.0
        self.trips = 0
        self.probes = 0
        self.probes_ok = 0
        self.probe_at = 0.0


def _reply(
    c: _Circuit,
    admitted: float = 1.0,
    until: float | None = None,
    old: float = -1.0,
    why: float = 0.0,
    a: float = 0.0,
    b: float = 0.0,
) -> Result:
    if until is None:
        until = c.until if c.st == _OPEN else 0.0
    return (admitted, float(c.gen), float(c.st), until, old, float(why), a, b)


def _acquire_py(c: _Circuit | None, args: Sequence[float], now: float) -> tuple[_Circuit | None, Result]:
    probes, lease = args
    if c is None:
        return None, (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0)
    if c.st == _CLOSED:
        return c, (1.0, float(c.gen), 0.0, 0.0, -1.0, 0.0, 0.0, 0.0)  # _reply(c) when closed: every call
    if c.st == _OPEN:
        if now < c.until:
            return c, _reply(c, admitted=0.0)
        c.st, c.gen, c.probes, c.probes_ok, c.probe_at = _HALF_OPEN, c.gen + 1, 1, 0, now
        return c, _reply(c, old=_OPEN, why=_R_WAIT_OVER)
    if c.probes < probes or now >= c.probe_at + lease:
        if c.probes >= probes:
            c.probes = 0  # every slot's lease ran out: those probes are presumed lost
        c.probes += 1
        c.probe_at = now
        return c, _reply(c)
    return c, _reply(c, admitted=0.0, until=c.probe_at + lease)


def _open_wait(open_wait: float, multiplier: float, max_wait: float, trips: int) -> float:
    """``open_wait * multiplier ** (trips - 1)``, capped at *max_wait*; never overflows (after ~1,000
    trips in one outage ``2.0 ** trips`` would raise OverflowError)."""
    try:
        return min(max_wait, open_wait * multiplier ** (trips - 1))
    except OverflowError:
        return max_wait


def _trip(c: _Circuit, now: float, open_wait: float, multiplier: float, max_wait: float) -> None:
    c.trips += 1
    c.until = now + _open_wait(open_wait, multiplier, max_wait, c.trips)
    c.st, c.gen = _OPEN, c.gen + 1
    c.window.clear()
    c.failures = c.consecutive = c.probes = c.probes_ok = 0


def _record_py(c: _Circuit | None, args: Sequence[float], now: float) -> tuple[_Circuit | None, Result]:
    gen, outcome, window, min_calls, threshold, consecutive, open_wait, multiplier, max_wait, probes = args
    fresh = c is None
    if c is None:
        c = _Circuit()
    if gen != c.gen or (outcome == _IGNORE and c.st != _HALF_OPEN):
        return (None if fresh else c), _reply(c)
    old = c.st
    if c.st == _CLOSED:
        failed = outcome == _FAILURE
        c.window.append(failed)
        if failed:
            c.failures += 1
            c.consecutive += 1
        else:
            c.consecutive = 0
        while len(c.window) > window:
            c.failures -= c.window.popleft()
        n = len(c.window)
        if consecutive > 0 and c.consecutive >= consecutive:
            count = c.consecutive
            _trip(c, now, open_wait, multiplier, max_wait)
            return c, _reply(c, old=old, why=_R_CONSECUTIVE, a=count)
        if n >= min_calls and c.failures >= threshold * n:
            rate = c.failures / n
            _trip(c, now, open_wait, multiplier, max_wait)
            return c, _reply(c, old=old, why=_R_RATE, a=rate, b=n)
        return c, (1.0, float(c.gen), 0.0, 0.0, -1.0, 0.0, 0.0, 0.0)  # _reply(c) when closed: every call
    if c.st == _HALF_OPEN:
        if outcome == _FAILURE:
            _trip(c, now, open_wait, multiplier, max_wait)
            return c, _reply(c, old=old, why=_R_PROBE_FAILED)
        c.probes = max(c.probes - 1, 0)
        if outcome == _SUCCESS:
            c.probes_ok += 1
            if c.probes_ok >= probes:
                ok = c.probes_ok
                _close(c)
                return c, _reply(c, old=old, why=_R_PROBES_OK, a=ok)
    return c, _reply(c)


def _close(c: _Circuit) -> None:
    c.st, c.gen, c.trips, c.until = _CLOSED, c.gen + 1, 0, 0.0
    c.window.clear()
    c.failures = c.consecutive = c.probes = c.probes_ok = 0


def _snapshot_py(c: _Circuit | None, args: Sequence[float], now: float) -> tuple[_Circuit | None, Result]:
    if c is None:
        return None, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    calls = float(len(c.window))
    return c, (
        float(c.st),
        float(c.gen),
        c.until,
        calls,
        float(c.failures),
        float(c.consecutive),
        float(c.trips),
    )


def _reset_py(c: _Circuit | None, args: Sequence[float], now: float) -> tuple[_Circuit | None, Result]:
    if c is None:
        return None, (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0)
    old = c.st
    _close(c)
    return c, _reply(c, old=-1.0 if old == _CLOSED else float(old), why=_R_RESET)


_ACQUIRE = AtomicOp(
    "breaker_acquire",
    _acquire_py,
    lua_files=("breaker_load.lua", "breaker_acquire.lua"),
)

_RECORD = AtomicOp(
    "breaker_record",
    _record_py,
    lua_files=("breaker_load.lua", "breaker_record.lua"),
)

_SNAPSHOT = AtomicOp(
    "breaker_snapshot",
    _snapshot_py,
    lua_files=("breaker_load.lua", "breaker_snapshot.lua"),
)

_RESET = AtomicOp(
    "breaker_reset",
    _reset_py,
    lua_files=("breaker_load.lua", "breaker_reset.lua"),
)
