"""An upstream's quota, read from its response headers: IETF fields, ``X-RateLimit-*``, ``Retry-After``.

Every number comes from outside the process and is clamped (see :mod:`resilient_session._numbers`): a
header that cannot be read is ignored, one out of range is brought into range, none raises.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .._numbers import MAX_WAIT, clamp, parse_retry_after

__all__ = ["MAX_LIMIT", "Quota", "parse_quota"]

#: The largest limit or remaining count taken from a header; larger values are brought down to it.
MAX_LIMIT = 1e9

# A reset above this is an epoch time in milliseconds, above _EPOCH_S one in seconds, else a delta.
_EPOCH_MS = 1e11
_EPOCH_S = 1e8

# OpenAI-style durations ("1s", "6m0s", "250ms", "1h2m3.5s").
_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$"
)


@dataclass(frozen=True)
class Quota:
    """The quota one response described, every field optional.

    :param limit: Calls allowed per window (``q``, ``X-RateLimit-Limit``).
    :param window: The window in seconds (``w``); ``None`` when the headers do not say.
    :param remaining: Calls left in the current window (``r``, ``X-RateLimit-Remaining``).
    :param reset: Seconds until the window resets (``t``, ``X-RateLimit-Reset`` in any of its forms).
    :param retry_after: Seconds the upstream asked to wait (``Retry-After`` on a 429 or 503).
    :param partition: Whether the upstream named a partition key (``pk``); its value is never kept.
    :param source: ``"ietf"``, ``"x-ratelimit"`` or ``"retry-after"``: what the figures came from.
    """

    limit: float | None = None
    window: float | None = None
    remaining: float | None = None
    reset: float | None = None
    retry_after: float | None = None
    partition: bool = False
    source: str = ""

    @property
    def rate(self) -> float | None:
        """Calls per second the policy allows (``limit / window``), when both are known."""
        if self.limit is None or self.window is None:
            return None
        return self.limit / self.window

    @property
    def exhausted(self) -> bool:
        """True when the upstream said no call is left before the reset."""
        return self.remaining is not None and self.remaining < 1


def parse_quota(
    headers: Mapping[str, str], status: int | None = None, *, wall: Callable[[], float] = time.time
) -> Quota | None:
    """The quota described by *headers* (a response's, case-insensitive), or ``None`` when none is.

    The IETF fields win over ``X-RateLimit-*`` when both are present. ``Retry-After`` counts only on a
    429 or a 503. *wall* is the clock epoch resets are measured against.
    """
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(_get(headers, "retry-after"), clock=wall)
    quota = _ietf(headers) or _legacy(headers, wall)
    if quota is None:
        if retry_after is None:
            return None
        return Quota(retry_after=retry_after, source="retry-after")
    if retry_after is not None:
        return Quota(
            limit=quota.limit,
            window=quota.window,
            remaining=quota.remaining,
            reset=quota.reset,
            retry_after=retry_after,
            partition=quota.partition,
            source=quota.source,
        )
    return quota


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None or not isinstance(value, str):
        return None
    return value


# -- IETF: draft-ietf-httpapi-ratelimit-headers ----------------------------------------------------


def _ietf(headers: Mapping[str, str]) -> Quota | None:
    """``RateLimit-Policy: "day";q=1000;w=86400, "burst";q=100;w=60`` and ``RateLimit: "burst";r=42;t=17``.

    Of several policies the one allowing the fewest calls per second sets the limit; the remaining
    count and reset are those of the most exhausted one (the first with nothing left, else the least
    left), matched by name. The older drafts' ``RateLimit-Limit``/``-Remaining``/``-Reset`` (a delta
    reset) are read as ``X-RateLimit-*``.
    """
    policies = _items(_get(headers, "ratelimit-policy"))
    states = _items(_get(headers, "ratelimit"))
    limit = window = remaining = reset = None
    partition = False
    best_rate = math.inf
    for _, params in policies:
        q = _number(params.get("q"), 1.0, MAX_LIMIT)
        w = _number(params.get("w"), 1.0, MAX_WAIT)
        if q is None:
            continue
        # Without ``w`` the window is unknown: the limit is kept, no rate is derived from it.
        per_second = q / w if w is not None else math.inf
        if limit is None or per_second < best_rate:
            best_rate, limit, window = per_second, q, w
        partition = partition or "pk" in params
    worst: tuple[float, float] | None = None
    for _, params in states:
        r = _number(params.get("r"), 0.0, MAX_LIMIT)
        t = _number(params.get("t"), 0.0, MAX_WAIT)
        if r is None:
            continue
        partition = partition or "pk" in params
        if worst is None or r < worst[0] or (r == worst[0] and (t or 0.0) > worst[1]):
            worst = (r, t if t is not None else 0.0)
    if worst is not None:
        remaining, reset = worst
    if limit is None and remaining is None:
        return None
    return Quota(
        limit=limit, window=window, remaining=remaining, reset=reset, partition=partition, source="ietf"
    )


def _items(value: str | None) -> list[tuple[str, dict[str, str]]]:
    """The members of a structured-field list (RFC 8941), each as (value, parameters); malformed
    members are skipped. Only what the rate-limit fields use is understood: strings, tokens, numbers."""
    if not value or len(value) > 4096:
        return []
    members: list[tuple[str, dict[str, str]]] = []
    for member in _split(value, ","):
        parts = _split(member, ";")
        if not parts:
            continue
        name = parts[0].strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1]
        params: dict[str, str] = {}
        for part in parts[1:]:
            key, sep, raw = part.strip().partition("=")
            if not key:
                continue
            params[key.strip().lower()] = raw.strip().strip('"') if sep else "?1"
        members.append((name, params))
    return members


def _split(text: str, mark: str) -> list[str]:
    """*text* split at *mark* outside double quotes."""
    out: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == mark and not quoted:
            out.append(text[start:index])
            start = index + 1
    out.append(text[start:])
    return [part for part in out if part.strip()]


# -- X-RateLimit-* and friends --------------------------------------------------------------------

_LIMIT_NAMES = ("x-ratelimit-limit", "x-ratelimit-limit-requests", "ratelimit-limit", "x-rate-limit-limit")
_REMAINING_NAMES = (
    "x-ratelimit-remaining",
    "x-ratelimit-remaining-requests",
    "ratelimit-remaining",
    "x-rate-limit-remaining",
)
_RESET_NAMES = (
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
    "ratelimit-reset",
    "x-rate-limit-reset",
)
_RESET_AFTER_NAMES = ("x-ratelimit-reset-after",)


def _legacy(headers: Mapping[str, str], wall: Callable[[], float]) -> Quota | None:
    """``X-RateLimit-Limit/Remaining/Reset`` (GitHub, and most APIs), the older IETF drafts'
    ``RateLimit-Limit/Remaining/Reset``, OpenAI's ``-requests`` suffixed names, Discord's
    ``X-RateLimit-Reset-After``. A reset is epoch milliseconds, epoch seconds, delta seconds or a
    duration (``"6m0s"``), told apart by size and form; the window is never stated, so it is ``None``."""
    limit = _first_number(headers, _LIMIT_NAMES, 1.0, MAX_LIMIT)
    remaining = _first_number(headers, _REMAINING_NAMES, 0.0, MAX_LIMIT)
    reset = None
    for name in _RESET_AFTER_NAMES:
        reset = _number(_get(headers, name), 0.0, MAX_WAIT)
        if reset is not None:
            break
    if reset is None:
        for name in _RESET_NAMES:
            raw = _get(headers, name)
            if raw is not None:
                reset = _reset(raw.strip(), wall)
                if reset is not None:
                    break
    if limit is None and remaining is None:
        return None
    if limit is not None and remaining is not None and remaining > limit:
        remaining = limit  # a count left larger than the limit is not believed
    return Quota(limit=limit, remaining=remaining, reset=reset, source="x-ratelimit")


def _reset(raw: str, wall: Callable[[], float]) -> float | None:
    match = _DURATION.match(raw) if raw.endswith(("s", "m", "h")) else None
    if match is not None and any(match.groups()):
        h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
        return clamp(h * 3600 + m * 60 + s + ms / 1000, 0.0, MAX_WAIT, 0.0)
    value = _number(raw, 0.0, math.inf)
    if value is None:
        return None
    if value > _EPOCH_MS:
        value = value / 1000.0 - wall()
    elif value > _EPOCH_S:
        value = value - wall()
    return clamp(value, 0.0, MAX_WAIT, 0.0)


def _first_number(
    headers: Mapping[str, str], names: tuple[str, ...], low: float, high: float
) -> float | None:
    for name in names:
        value = _number(_get(headers, name), low, high)
        if value is not None:
            return value
    return None


_PLAIN_NUMBER = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def _number(raw: str | None, low: float, high: float) -> float | None:
    """*raw* as a number in ``[low, high]`` (larger values brought down to *high*), or ``None`` when it
    is no plain decimal number (``nan``, ``inf``, text) or is below *low*."""
    if raw is None:
        return None
    text = raw.strip()
    if len(text) > 512 or not _PLAIN_NUMBER.match(text):
        return None
    value = clamp(text, -math.inf, math.inf, math.nan)
    if math.isnan(value) or value < low:
        return None
    return min(value, high)
