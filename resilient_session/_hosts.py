"""The scope of the per-host policies: a URL's origin, spelled one way.

The breaker, the budget and the bulkhead keep one state per origin (route groups split the breaker's
further, see :mod:`resilient_session.policies.routes`); the registry and the Flask integration find an
integration by it. Public as :func:`resilient_session.stores.host_key`.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

__all__ = ["host_key"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_key(url: str) -> str:
    """The per-host scope of *url*: ``scheme://host:port``, lower-cased, default port filled in.

    Path, query and credentials never enter the key, so it is safe to log.
    """
    # Every call computes this: cut the origin off (up to the first "://", then to the first of "/?#")
    # with one regular expression, and parse each distinct origin once (a process talks to few hosts,
    # through many paths).
    origin = _ORIGIN.match(url)
    return _origin_key(url if origin is None else origin.group())


_ORIGIN = re.compile(r".*?://[^/?#]*", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _origin_key(origin: str) -> str:
    parts = urlsplit(origin)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
