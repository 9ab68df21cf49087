"""Route groups: the paths of one origin whose failures a circuit breaker counts apart.

A circuit breaker with route groups keeps two kinds of circuit. The origin's circuit (or the named one)
counts what says the *host* cannot be reached: refused connections, failed TLS handshakes, connect
timeouts, DNS failures. Each route group's circuit counts what one answered path says about itself: the
failure statuses, read timeouts, bodies broken off. A call needs both circuits closed; so an overloaded
``/reports`` answering 503 opens only its group's circuit, while ``/users`` keeps working, and a host that
refuses connections is closed for every path at once.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from requests import exceptions as rexc
from urllib3 import exceptions as u3exc

__all__ = ["DEFAULT_GROUP", "RouteGroups", "group_for", "is_connection_failure"]

#: The group of every path no pattern names (and, by default, of paths with no resource-like segment).
DEFAULT_GROUP = "*"

# A path segment that names a collection ("users", "line-items", "oauth2"), not one item of it.
_RESOURCE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
# Version and API markers skipped before the resource segment ("/api/v2/users" groups as "/api/v2/users").
_MARKER = re.compile(r"^(api|rest|v\d+(\.\d+)?([a-z]+\d*)?)$", re.IGNORECASE)
_TEMPLATE = re.compile(r"^\{[^{}/]*\}$")
_SEGMENT = re.compile(r"^[^/{}]+$")


def _resource_like(segment: str) -> bool:
    # Ids are numbers, UUIDs, hashes, prefixed keys ("cus_9s8d7f6a"): a digit in a long segment.
    if not _RESOURCE.match(segment):
        return False
    return not (len(segment) >= 8 and _DIGIT.search(segment) is not None)


_DIGIT = re.compile(r"[0-9]")  # _RESOURCE admits ASCII only


@dataclass(frozen=True)
class RouteGroups:
    """Named groups of paths: ``RouteGroups({"/v1/reports": "reports", "/v1/users/{id}/orders": "orders"})``.

    Each key is a path prefix (matched at ``/`` boundaries: ``/v1/reports`` matches ``/v1/reports`` and
    ``/v1/reports/9``, not ``/v1/reportsx``) or a template whose ``{name}`` segments match any one
    segment. Keys are matched against the request's whole path; the longest match (most segments, then
    most literal segments) names the group. Paths no key matches share the group ``"*"``. Several keys
    may name one group: their paths share its circuit.

    Immutable and hashable; a :class:`~resilient_session.CircuitBreaker` turns a mapping given as
    ``routes=`` into one.
    """

    patterns: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        for pattern, group in self.patterns:
            problem = pattern_problem(pattern) or name_problem(group)
            if problem is not None:
                raise ValueError(f"routes: {pattern!r}: {problem}")
        compiled = sorted(
            ((_split(p), g) for p, g in self.patterns),
            key=lambda item: (-len(item[0]), -sum(not _TEMPLATE.match(s) for s in item[0])),
        )
        object.__setattr__(self, "_compiled", tuple(compiled))

    @classmethod
    def of(cls, mapping: Mapping[str, str]) -> RouteGroups:
        """The groups of a ``{pattern: group}`` mapping."""
        if not isinstance(mapping, Mapping):
            raise TypeError(f"routes must be True, False or a mapping of paths to groups, not {mapping!r}")
        return cls(tuple(mapping.items()))

    def group(self, path: str) -> str:
        """The group of *path* (``"*"`` when no pattern matches)."""
        segments = _split(path)
        compiled: tuple[tuple[tuple[str, ...], str], ...] = self._compiled  # type: ignore[attr-defined]
        for pattern, group in compiled:
            if len(pattern) <= len(segments) and all(
                p == s or _TEMPLATE.match(p) for p, s in zip(pattern, segments, strict=False)
            ):
                return group
        return DEFAULT_GROUP

    def __repr__(self) -> str:
        return f"RouteGroups({dict(self.patterns)!r})"


def pattern_problem(pattern: Any) -> str | None:
    """What is wrong with a route pattern, or ``None``."""
    if not isinstance(pattern, str):
        return "a pattern is a path, as a string"
    if not pattern.startswith("/"):
        return 'a pattern is a path starting with "/"'
    for segment in _split(pattern):
        if not (_TEMPLATE.match(segment) or _SEGMENT.match(segment)):
            return f"segment {segment!r} is neither literal nor a {{name}} template"
    return None


def name_problem(group: Any) -> str | None:
    """What is wrong with a group name, or ``None``."""
    if not isinstance(group, str) or not group.strip():
        return "a group name is a non-empty string"
    return None


def routes_problem(value: Any) -> str | None:
    """What is wrong with a breaker's ``routes`` option as read from an integrations file, or ``None``."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, Mapping):
        return "expected true, false or a table of path patterns to group names"
    for pattern, group in value.items():
        problem = pattern_problem(pattern) or name_problem(group)
        if problem is not None:
            return f"{pattern!r}: {problem}"
    return None


def group_for(
    routes: bool | Mapping[str, str] | RouteGroups, url: str, base_url: str | None = None
) -> str | None:
    """The route group of *url* under *routes*, or ``None`` when routes are off.

    ``True``: the first resource-like path segment below *base_url*'s path (when *url* is under it),
    past ``api`` and version segments (``v1``, ``v2beta``), with the path before it: ``"/v1/users"``
    for ``/v1/users/42``. A path whose first segment is an id, or empty, is in group ``"*"``.
    """
    if routes is True:
        return _default_group(url, base_url)
    if routes is False:
        return None
    path = _path(url)
    if isinstance(routes, Mapping):
        routes = RouteGroups.of(routes)
    return routes.group(path)


@functools.lru_cache(maxsize=1024)
def _default_group(url: str, base_url: str | None) -> str:
    # Remembered: every call of a breaker with the default route groups asks it, mostly for a few URLs.
    path = _path(url)
    prefix = ""
    if base_url:
        base = _base_path(base_url)
        if base and (path == base or path.startswith(base + "/")):
            prefix, path = base, path[len(base) :]
    segments = _split(path)
    for index, segment in enumerate(segments[:3]):
        if _MARKER.match(segment):
            continue
        if _resource_like(segment):
            return "/".join([prefix, *segments[: index + 1]])
        break
    return DEFAULT_GROUP


def _path(url: str) -> str:
    """The path of *url* (absolute, or a path), without query or fragment; string operations, as
    :func:`~resilient_session.stores.host_key` does: every call of a breaker with route groups runs it."""
    start = url.find("://", 0, 16)
    if start >= 0:
        end = len(url)
        for mark in "/?#":
            found = url.find(mark, start + 3, end)
            if found >= 0:
                end = found
        url = url[end:] if end < len(url) and url[end] == "/" else ""
    for mark in "?#":
        cut = url.find(mark)
        if cut >= 0:
            url = url[:cut]
    return url or "/"


@functools.lru_cache(maxsize=256)
def _base_path(base_url: str) -> str:
    return urlsplit(base_url).path.rstrip("/")


def _split(path: str) -> tuple[str, ...]:
    return tuple(filter(None, path.split("/")))


# -- evidence ----------------------------------------------------------------------------------------

# Failures that happen before any byte of an answer: the host (or the way to it) is down, not one path.
_CONNECT_CAUSES: tuple[type[BaseException], ...] = (
    u3exc.ConnectTimeoutError,  # NewConnectionError and NameResolutionError too
    u3exc.SSLError,
    u3exc.ProxyError,
    ConnectionRefusedError,
    socket.gaierror,
    ssl.SSLError,
)
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (rexc.ConnectTimeout, rexc.SSLError, rexc.ProxyError)


def is_connection_failure(error: BaseException) -> bool:
    """True when *error* says the host could not be reached at all (refused, DNS, TLS, connect timeout),
    as opposed to a failure of one answer (read timeout, reset mid-answer, broken body)."""
    if isinstance(error, _CONNECT_ERRORS):
        return True
    seen: BaseException | None = error
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, _CONNECT_CAUSES):
            return True
        if isinstance(seen, u3exc.MaxRetryError) and seen.reason is not None:
            seen = seen.reason
        elif seen.args and isinstance(seen.args[0], BaseException):
            seen = seen.args[0]
        else:
            seen = seen.__cause__
    return False
