"""Integrations registered process-wide: one upstream API defined once, its protection shared by every call.

An integration is a name, the origins it is served from, and the options of its sessions (policies,
timeouts, auth, headers). Registered once, in code::

    registry.register("stripe", base_url="https://api.stripe.com/v1", auth=BearerAuth(key),
                      breaker=CircuitBreaker(open_wait=10))

or from the integrations file (:func:`register_config`), every ``ResilientSession(integration="stripe")``
of the process, made per call, per thread or per web request, uses the same breaker and retry budget, so
it shares one circuit and one budget (and, with a :class:`~resilient_session.RedisStore`, one state
across the fleet). The registry holds definitions only; the state lives in the policies' store.

The registry is thread-safe: every change replaces an immutable snapshot, read without a lock.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._hosts import host_key
from .errors import ConfigurationError
from .policies.breaker import CircuitBreaker
from .policies.budget import RetryBudget
from .session import ResilientSession

if TYPE_CHECKING:
    from .config.load import Source

__all__ = [
    "Integration",
    "RegistrySnapshot",
    "find",
    "get",
    "lookup",
    "register",
    "register_config",
    "registered",
    "reset",
    "restore",
    "session",
    "snapshot",
    "unregister",
]

#: Session options an integration may set (every ``ResilientSession`` keyword but ``integration``).
SESSION_OPTIONS = (
    "timeout",
    "retry",
    "deadline",
    "auth",
    "raise_for_status",
    "breaker",
    "budget",
    "bulkhead",
    "rate_limit",
    "request_id_header",
    "tracing",
    "max_response_size",
    "degrade",
    "headers",
    "allowed_origins",
    "drift",
)

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True, eq=False)
class Integration:
    """One registered upstream API: what every session of the process talking to it uses.

    :param name: The integration's name (letters, digits, ``_`` and ``-``), also the name of its circuit
        and retry budget: every session of the integration shares them, whatever origin it calls.
    :param base_url: Relative URLs of its sessions are appended to it; its origin is one of ``origins``.
    :param origins: Every ``scheme://host:port`` the integration is served from (the base URL's
        included), as :func:`~resilient_session.stores.host_key` spells them.
    :param breaker: The circuit breaker of its sessions, named after the integration, or ``None``.
    :param budget: The retry budget of its sessions, named after the integration, or ``None``.
    :param options: The other session options (``timeout``, ``retry``, ``deadline``, ``auth``,
        ``bulkhead`` ...), as given.
    :param headers: Headers every session of the integration sends.

    Immutable; :func:`register` builds it. Sessions made from it keep the policy objects they were given,
    so re-registering a name changes the sessions made afterwards, not those already made.
    """

    name: str
    base_url: str | None = None
    origins: tuple[str, ...] = ()
    breaker: CircuitBreaker | None = None
    budget: RetryBudget | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def base_path(self) -> str:
        """The path of ``base_url`` without its trailing slash (``"/v1"``), or ``""``."""
        return _base_path(self.base_url)

    def session_kwargs(self) -> dict[str, Any]:
        """The :class:`~resilient_session.ResilientSession` keywords of this integration (no headers)."""
        kwargs = {k: v for k, v in self.options.items() if k != "headers"}
        kwargs.update(
            base_url=self.base_url,
            breaker=self.breaker or False,
            budget=self.budget or False,
            integration=self.name,
        )
        return kwargs

    def session(self, **overrides: Any) -> ResilientSession:
        """A new session of this integration; *overrides* are session keywords that win over its own."""
        return ResilientSession(**{**self.session_kwargs(), **overrides})

    def serves(self, url: str) -> bool:
        """True when *url* is on one of the integration's origins and, on the base URL's origin, under
        its base path."""
        return _match_length(self, url) is not None

    def __repr__(self) -> str:
        from ._redact import redact_url

        base_url = redact_url(self.base_url) if self.base_url else None
        return f"Integration(name={self.name!r}, base_url={base_url!r}, origins={self.origins!r})"


@dataclass(frozen=True)
class RegistrySnapshot:
    """What :func:`snapshot` saw: the integrations registered, for :func:`restore`."""

    integrations: Mapping[str, Integration]


class _State:
    """An immutable view of the registry: by name, and by origin for :func:`lookup`."""

    __slots__ = ("by_name", "by_origin")

    def __init__(self, by_name: Mapping[str, Integration]) -> None:
        self.by_name: Mapping[str, Integration] = MappingProxyType(dict(by_name))
        by_origin: dict[str, list[Integration]] = {}
        for item in by_name.values():
            for origin in item.origins:
                by_origin.setdefault(origin, []).append(item)
        self.by_origin = {origin: tuple(items) for origin, items in by_origin.items()}


_state = _State({})
_lock = threading.Lock()


def register(
    name: str,
    *,
    base_url: str | None = None,
    origins: Iterable[str] = (),
    replace: bool = False,
    **options: Any,
) -> Integration:
    """Define integration *name* for the whole process and return it.

    :param base_url: The base URL of its sessions (``"https://api.stripe.com/v1"``).
    :param origins: More URLs or origins it is served from (``"https://files.stripe.com"``).
    :param replace: Replace an integration already registered under *name* (otherwise an error).
    :param options: Session keywords (see :class:`~resilient_session.ResilientSession`): ``timeout``,
        ``retry``, ``deadline``, ``auth``, ``raise_for_status``, ``breaker``, ``budget``, ``bulkhead``,
        ``rate_limit`` (an unnamed one is named after the integration, like the breaker),
        ``request_id_header``, ``tracing``, ``max_response_size``, ``degrade``, and ``headers`` (a
        mapping sent by every session). ``breaker`` and ``budget`` default to ``True``, as for a session;
        an unnamed :class:`~resilient_session.CircuitBreaker` or :class:`~resilient_session.RetryBudget`
        is named after the integration (it keeps its store), so its sessions share one circuit and one
        budget.
    :raises ConfigurationError: *name* is invalid or already registered, or an origin is not an
        ``http(s)://`` URL with a host.
    :raises TypeError: an option is unknown, or of a type the session refuses.
    :raises ValueError: an option's value is one the session refuses.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"an integration name may contain letters, digits, '_' and '-' only, not {name!r}"
        )
    unknown = sorted(set(options) - set(SESSION_OPTIONS))
    if unknown:
        raise TypeError(
            f"register() got unknown option(s) {', '.join(unknown)} (expected: {', '.join(SESSION_OPTIONS)})"
        )
    found = [_origin(base_url, "base_url")] if base_url is not None else []
    if isinstance(origins, str):
        origins = [origins]
    for item in origins:
        origin = _origin(item, "origins")
        if origin not in found:
            found.append(origin)
    integration = _build(name, base_url, tuple(found), dict(options))
    global _state
    with _lock:
        if name in _state.by_name and not replace:
            raise ConfigurationError(
                f"integration {name!r} is already registered; pass replace=True or unregister() it first"
            )
        _state = _State({**_state.by_name, name: integration})
    return integration


def register_config(
    source: Source, names: Iterable[str] | None = None, *, replace: bool = False
) -> dict[str, Integration]:
    """Register the integrations of an integrations file (a TOML path or the parsed mapping).

    :param names: Register only these (default: every integration of the file).
    :returns: The integrations registered, by name.
    :raises InvalidConfigError: the file is invalid or names an unset environment variable.
    :raises ConfigurationError: a name is not in the file, or already registered (without ``replace``).
    """
    from .config.load import load_ready

    configs = load_ready(source)
    wanted = list(configs) if names is None else list(names)
    missing = [n for n in wanted if n not in configs]
    if missing:
        raise ConfigurationError(
            f"no integration {', '.join(map(repr, missing))} in the file "
            f"(defined: {', '.join(sorted(configs)) or 'none'})"
        )
    if not replace:
        taken = [n for n in wanted if n in _state.by_name]
        if taken:
            raise ConfigurationError(
                f"integration(s) {', '.join(map(repr, taken))} already registered; pass replace=True"
            )
    done = {}
    for name in wanted:
        config = configs[name]
        kwargs = config.session_kwargs()
        kwargs.pop("integration")
        base_url = kwargs.pop("base_url")
        done[name] = register(
            name, base_url=base_url, replace=replace, headers=dict(config.headers), **kwargs
        )
    return done


def unregister(name: str) -> Integration | None:
    """Remove integration *name*; returns it, or ``None`` when it was not registered."""
    global _state
    with _lock:
        removed = _state.by_name.get(name)
        if removed is not None:
            _state = _State({k: v for k, v in _state.by_name.items() if k != name})
    return removed


def get(name: str) -> Integration:
    """The integration registered as *name*.

    :raises ConfigurationError: none is (the message lists those that are).
    """
    found = _state.by_name.get(name)
    if found is None:
        known = ", ".join(sorted(_state.by_name)) or "none"
        raise ConfigurationError(f"no integration {name!r} is registered (registered: {known})")
    return found


def find(name: str) -> Integration | None:
    """The integration registered as *name*, or ``None``."""
    return _state.by_name.get(name)


def registered() -> Mapping[str, Integration]:
    """Every registered integration, by name (a read-only snapshot)."""
    return _state.by_name


def lookup(url: str) -> Integration | None:
    """The integration serving *url*, or ``None``.

    Matched by origin (``scheme://host:port``); among integrations of that origin, the one whose base
    path is the longest prefix of the URL's path (at a ``/`` boundary) wins, and among equals the first
    registered. An integration's extra ``origins`` match any path.
    """
    state = _state
    candidates = state.by_origin.get(host_key(url))
    if not candidates:
        return None
    best: Integration | None = None
    best_length = -1
    for item in candidates:
        length = _match_length(item, url)
        if length is not None and length > best_length:
            best, best_length = item, length
    return best


def session(name: str, **overrides: Any) -> ResilientSession:
    """A new session of integration *name* (:meth:`Integration.session`).

    :raises ConfigurationError: *name* is not registered.
    """
    return get(name).session(**overrides)


def reset() -> None:
    """Unregister every integration."""
    global _state
    with _lock:
        _state = _State({})


def snapshot() -> RegistrySnapshot:
    """The registrations now, to put back later with :func:`restore`."""
    return RegistrySnapshot(_state.by_name)


def restore(saved: RegistrySnapshot) -> None:
    """Put back the registrations :func:`snapshot` saw (those made since are dropped)."""
    global _state
    with _lock:
        _state = _State(saved.integrations)


# -- sessions --------------------------------------------------------------------------------------


def configure(session: ResilientSession, name: str, given: Mapping[str, Any]) -> None:
    """Give *session* the options of integration *name* it was not given explicitly in *given* (its
    constructor's arguments); nothing when *name* is not registered (``integration=`` is then a label)."""
    integration = _state.by_name.get(name)
    if integration is None:
        return
    defaults = _session_defaults()
    own = integration.session_kwargs()
    for option, value in own.items():
        if option == "integration" or option not in defaults:
            continue
        if _explicit(given.get(option, defaults[option]), defaults[option]):
            continue
        setattr(session, option, value)
    # The session was just made: its headers are requests' defaults, which the integration's replace.
    session.headers.update(integration.headers)


def _explicit(value: Any, default: Any) -> bool:
    try:
        return bool(value is not default and value != default)
    except Exception:  # a value that cannot be compared was given on purpose
        return True


@functools.cache
def _session_defaults() -> dict[str, Any]:
    """The keyword defaults of ``ResilientSession.__init__``, whose arguments *given* holds."""
    parameters = inspect.signature(ResilientSession.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


# -- building --------------------------------------------------------------------------------------


def _build(name: str, base_url: str | None, origins: tuple[str, ...], options: dict[str, Any]) -> Integration:
    headers = options.pop("headers", None) or {}
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of header names to values, not {type(headers).__name__}")
    breaker = options.pop("breaker", True)
    budget = options.pop("budget", True)
    # The session's own checks judge every option, so registering refuses what a session would.
    trial = ResilientSession(base_url=base_url, breaker=breaker, budget=budget, **options)
    trial.close()
    named_breaker = _named(trial.breaker, name)
    named_budget = _named(trial.budget, name)
    if "retry" in options:
        options["retry"] = trial.retry
    for key in ("bulkhead",):
        if key in options:
            options[key] = getattr(trial, key) or False
    if "rate_limit" in options:
        options["rate_limit"] = _named(trial.rate_limit, name) or False
    return Integration(
        name=name,
        base_url=base_url,
        origins=origins,
        breaker=named_breaker,
        budget=named_budget,
        options=MappingProxyType(options),
        headers=MappingProxyType(dict(headers)),
    )


def _named(policy: Any, name: str) -> Any:
    if policy is None or policy.name is not None:
        return policy
    return policy.new(name=name)


def _origin(url: Any, what: str) -> str:
    if not isinstance(url, str):
        raise ConfigurationError(f"{what}: expected an http:// or https:// URL, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigurationError(f"{what}: not a valid URL (bad port or brackets)") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{what}: expected an http:// or https:// URL with a host")
    return host_key(url)


def _base_path(base_url: str | None) -> str:
    if not base_url:
        return ""
    return urlsplit(base_url).path.rstrip("/")


def _match_length(integration: Integration, url: str) -> int | None:
    """Length of the integration's base path matched by *url* (0 for its other origins), or ``None``."""
    origin = host_key(url)
    if origin not in integration.origins:
        return None
    if integration.base_url is None or host_key(integration.base_url) != origin:
        return 0
    base = integration.base_path
    if not base:
        return 0
    path = urlsplit(url).path
    if path == base or path.startswith(base + "/"):
        return len(base)
    return None
