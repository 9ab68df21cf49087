"""Numbers that come from outside the process (headers, stores, servers), made finite and bounded.

Every such number passes through :func:`clamp` before it is used: ``NaN`` becomes a documented default,
``inf``, ``1e400`` and 400-digit integers become the top of a documented range. Nothing downstream
(``math.ceil``, ``int()``, ``time.sleep``, arithmetic) then sees a value it cannot take.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable

__all__ = ["MAX_RETRY_AFTER", "MAX_WAIT", "clamp", "parse_retry_after"]

#: The longest wait, in seconds, any externally sourced number may ask for (one day): ``Retry-After``,
#: a circuit's ``retry_in``, a stored open-until time. Policies cap waits further (``backoff_max``).
MAX_WAIT = 86400.0

#: ``Retry-After`` values are clamped to ``[0, MAX_RETRY_AFTER]`` seconds.
MAX_RETRY_AFTER = MAX_WAIT

# A decimal number, as float() reads it, but ASCII digits only and no "inf"/"nan" spelled out.
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def clamp(value: object, low: float, high: float, default: float) -> float:
    """*value* as a float in ``[low, high]``: too large (``inf`` included) gives *high*, too small
    *low*; ``NaN``, ``None`` and anything not a number give *default*."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, bytes)):
        return default
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return default
    if math.isnan(number):
        return default
    return min(max(number, low), high)


def parse_retry_after(value: str | None, *, clock: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, in ``[0, MAX_RETRY_AFTER]``, or ``None``.

    Delta-seconds (RFC 9110 allows digits only; a fraction or an exponent is accepted too) and HTTP
    dates are understood. Values past the range (``1e999``, a 400-digit number, a date in the year
    9999) give :data:`MAX_RETRY_AFTER`; negative values and dates in the past give 0; ``NaN``, ``inf``
    and anything else unparseable give ``None`` (no usable hint).
    """
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if _NUMBER.match(text):
        return clamp(text, 0.0, MAX_RETRY_AFTER, 0.0)  # float() turns 1e999 and 400 digits into inf
    try:
        parsed = email.utils.parsedate_tz(text)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - clock()
    except (ValueError, OverflowError, TypeError, IndexError):
        return None
    return clamp(seconds, 0.0, MAX_RETRY_AFTER, 0.0)
