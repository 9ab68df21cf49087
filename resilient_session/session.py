"""The drop-in session: ``requests.Session`` plus timeouts, retries, a deadline and typed errors."""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from requests.adapters import BaseAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from . import _degrade, _environ, _prepare, _send
from ._call import CallState, carry, current_call, drop, enter, leave
from ._compat.requests import OriginalSession
from ._options import check_session_option, policy_option
from ._redact import redact_url
from ._subclassing import (
    class_value,
    defined_by_subclass,
    given_arguments,
    inherits_from_requests,
    remembers_arguments,
)
from .adapter import (
    DEFAULT_TIMEOUT,
    MountedAdapter,
    ResilientAdapter,
    TimeoutArg,
    follows_session_retry,
    refuse_if_open,
)
from .auth import origins as _origins
from .auth.keys import carry_credentials
from .errors import CircuitOpenError, status_error_for
from .normalization.drift import DriftPolicy, check_drift_policy
from .normalization.view import NormalizableResponse, ensure_normalized
from .observe.events import Events
from .observe.observer import begin_call, end_call, report_refused
from .observe.request_id import DEFAULT_REQUEST_ID_HEADER, with_request_id
from .policies.breaker import CircuitBreaker
from .policies.budget import RetryBudget
from .policies.bulkhead import Bulkhead
from .policies.degrade import Degrade
from .policies.ratelimit import RateLimit
from .retry import as_retry_policy

if TYPE_CHECKING:
    from typing_extensions import Self

    from .config.model import IntegrationConfig

__all__ = ["ResilientSession"]

AuthArg = AuthBase | tuple[str, str] | None


class ResilientSession(OriginalSession):
    """A :class:`requests.Session` whose every call has a timeout, retries, a deadline and typed errors.

    Replace ``requests.Session()`` with ``ResilientSession()``; everything not listed here behaves as in
    requests (hooks, cookies, redirects, streaming, proxies, mounting, pickling).

    :param base_url: Relative URLs are appended to it (``base_url="https://api.example.com/v1"`` and
        ``"/users"`` give ``https://api.example.com/v1/users``); absolute URLs are used as given.
    :param timeout: Default ``(connect, read)`` seconds, :data:`~resilient_session.adapter.DEFAULT_TIMEOUT`
        ``(3.05, 30)``, used when a call passes no ``timeout=`` or ``timeout=None`` (plain requests
        would wait forever there). Any other ``timeout=`` of a caller wins; ``(3.05, None)`` keeps a
        connect timeout but lets a stream read forever, ``(None, None)`` waits forever.
    :param retry: The retry policy of the adapters this session mounts: a
        :class:`~resilient_session.RetryPolicy`, a urllib3 ``Retry``, an int, or ``False``.
    :param deadline: Seconds for the whole call (attempts, backoff and redirects included), or ``None``.
        A call may pass its own ``deadline=``.
    :param auth: As ``session.auth``; with a ``base_url`` (or ``allowed_origins``) these credentials are
        bound to the integration: sent only to ``base_url``'s origin and ``allowed_origins``, never to
        another origin an absolute URL names. A ``session.auth`` assigned later is sent everywhere, as in
        requests.
    :param allowed_origins: More origins (``"https://files.example.com"``) the credentials given with
        ``base_url`` may be sent to. See :mod:`resilient_session.auth.origins`.
    :param raise_for_status: When True, a final 4xx/5xx answer (after retries) raises the matching
        :class:`~resilient_session.APIStatusError` subclass. ``response.raise_for_status()`` is unchanged.
    :param breaker: A :class:`~resilient_session.CircuitBreaker` shared by the mounted adapters, ``True``
        for ``CircuitBreaker()`` (default), or ``False``: no circuit breaking.
    :param budget: A :class:`~resilient_session.RetryBudget`, ``True`` (default) for this session's own
        ``RetryBudget()``, or ``False``. It only ever removes retries, never adds a failure.
    :param bulkhead: A :class:`~resilient_session.Bulkhead`, ``True`` for ``Bulkhead()``, or ``False``
        (default).
    :param rate_limit: A :class:`~resilient_session.policies.RateLimit` shaping calls to the upstream's quota
        (waiting for a slot, or :class:`~resilient_session.errors.QuotaExceededError` when none comes in
        time), ``True`` for ``RateLimit()`` (learned from the upstream's headers and 429s only), or
        ``False``/``None`` (default): none.
    :param integration: A name for the upstream (``"stripe"``), put on log lines, events and spans.
        When an integration is registered under that name (:mod:`resilient_session.registry`), every
        option left at its default here takes the integration's value: its base URL, its breaker and
        budget (shared with every other session of the integration), its headers ...
    :param request_id_header: Each call sends one id in this header, the same on every retry and
        redirect hop; a request that already has the header keeps its value. It is set while the
        request is prepared, before auth runs, so an auth that signs every header signs it.
        ``None`` sends none. Default ``"X-Request-ID"``.
    :param max_response_size: Bytes a non-streamed body may have *after* decoding (gzip, br ...). Past
        it the read stops at once and the call raises
        :class:`~resilient_session.MalformedResponseError` with ``code == "body_too_large"``, so a
        compression bomb never reaches memory. ``None`` (default): no limit, as in requests.
    :param degrade: A :class:`~resilient_session.policies.Degrade` policy: a ``GET`` or ``HEAD`` that fails
        (open circuit, timeout, refused connection, 5xx/429 after retries ...) is answered with the
        stored answer, or a fallback, marked as such in ``response.normalized.degraded``. ``None``
        (default): failures raise. A call passing ``allow_stale=False`` is never answered this way.
    :param tracing: ``True`` (default): OpenTelemetry spans once the application installed a tracer
        provider; a ``TracerProvider`` to use that one; ``False``: never. See
        :mod:`resilient_session.observe.tracing`.
    :param drift: What ``response.normalized.into(Model)`` does with a body that does not fit:
        ``"raise"`` (default) :class:`~resilient_session.errors.SchemaMismatchError`, ``"warn"`` (return what
        validates and report) or ``"ignore"``. See ``docs/normalization.md``.

    ``base_url``, ``timeout``, ``retry``, ``deadline``, ``raise_for_status`` and ``request_id_header``
    are checked here, as the integrations file checks them and with its words (``TypeError`` for a wrong
    type, ``ValueError`` for a value out of bounds, the option's name first). Without a ``deadline`` a call
    is bounded by its timeouts and retries only (see ``docs/failure-guide.md``, "The worst case").

    Every option is also an attribute, set later with the same values accepted, and read at the next
    call: ``session.retry = RetryPolicy(0)``, ``session.breaker = False``, ``session.deadline = 5``.
    Mounted adapters not given a policy of their own use the session's.

    ``session.events`` (:class:`~resilient_session.Events`) takes callbacks told about every call.

    A subclass keeps an option it defines on its class (``timeout = 10``) or sets on the instance before
    calling ``super().__init__()``; an argument passed here still wins.
    """

    #: The methods of requests' ``Session`` that ``super()`` reaches from this class unchanged (no mixin
    #: after it in the MRO overrides them): only those are mirrored by remembered or shortened steps.
    _plain_super: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_super = _plain_super(cls)

    __attrs__ = [
        *OriginalSession.__attrs__,
        *("base_url", "timeout", "deadline", "retry", "raise_for_status", "breaker", "budget", "bulkhead"),
        *("events", "integration", "request_id_header", "max_response_size", "drift"),
        *("allowed_origins", "_bound_auth", "degrade", "rate_limit"),
    ]

    #: The auth object bound to this session's origins (the constructor's ``auth=``), or ``None``.
    _bound_auth: Any = None
    _allowed_origins: tuple[str, ...] = ()

    #: Not in ``__attrs__``: a tracer provider is process-local, so a copy traces with the default.
    tracing: Any = True
    #: The class default, for sessions unpickled from before the option existed.
    drift: DriftPolicy = "raise"

    # Set by __init__ unless a subclass set them first (see _subclassing).
    degrade: Degrade | None
    raise_for_status: bool
    events: Events
    integration: str | None
    request_id_header: str | None

    @remembers_arguments
    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        retry: Retry | int | bool | None = None,
        deadline: float | None = None,
        auth: AuthArg = None,
        raise_for_status: bool = False,
        breaker: CircuitBreaker | bool | None = True,
        budget: RetryBudget | bool | None = True,
        bulkhead: Bulkhead | bool | None = False,
        rate_limit: RateLimit | bool | None = None,
        integration: str | None = None,
        request_id_header: str | None = DEFAULT_REQUEST_ID_HEADER,
        tracing: Any = True,
        max_response_size: int | None = None,
        allowed_origins: str | Iterable[str] | None = None,
        drift: DriftPolicy = "raise",
        degrade: Degrade | None = None,
    ) -> None:
        passed = locals().copy()  # for a registered integration: what was left at its default
        # Plain attributes, checked here; the options that are properties check themselves.
        check_session_option("raise_for_status", raise_for_status)
        check_session_option("request_id_header", request_id_header)
        check_drift_policy(drift)
        if degrade is not None and not isinstance(degrade, Degrade):
            raise TypeError(f"degrade must be a Degrade or None, not {type(degrade).__name__}")
        super().__init__()
        # What a subclass set on its class or on the instance before super().__init__() stays, unless
        # the same option was passed here (see _subclassing).
        given = given_arguments()
        options: dict[str, Any] = {
            "max_response_size": max_response_size,
            "events": Events(),
            "integration": integration,
            "request_id_header": request_id_header,
            "tracing": tracing,
            "base_url": base_url,
            "timeout": timeout,
            "deadline": deadline,
            "retry": retry,
            "raise_for_status": raise_for_status,
            "breaker": breaker,
            "budget": budget,
            "bulkhead": bulkhead,
            "rate_limit": rate_limit,
            "allowed_origins": allowed_origins,
            "drift": drift,
            "degrade": degrade,
        }
        for name, value in options.items():
            stored_as = f"_{name}" if name in _PROPERTIES else None
            if name not in given and defined_by_subclass(
                self, name, stored_as=stored_as, own=ResilientSession
            ):
                if stored_as is None or stored_as in vars(self):
                    continue
                # A plain value hiding one of our properties still goes through its checks.
                if name in vars(self):
                    found, value = True, vars(self)[name]
                else:
                    found, value = class_value(self, name, own=ResilientSession)
                if not found:
                    continue
            if stored_as is not None:
                getattr(ResilientSession, name).fset(self, value)
                if name in given and getattr(type(self), name) is not getattr(ResilientSession, name):
                    # A plain class value of the subclass hides our property: the checked value goes
                    # on the instance, where attribute look-up finds it first.
                    vars(self)[name] = getattr(self, stored_as)
            else:
                setattr(self, name, value)
        if auth is not None:
            self.auth = self._bound_auth = auth
        for prefix in ("https://", "http://"):
            # No policies of its own: it reads the session's at call time (retry: see mount()).
            self.mount(prefix, ResilientAdapter())
        # Looked up, not imported: nothing can be registered before the registry module is imported,
        # and the registry builds sessions itself.
        registry = sys.modules.get("resilient_session.registry") if integration is not None else None
        if registry is not None:
            registry.configure(self, integration, passed)

    # -- policies: the same values are accepted here, at construction and as attributes later -------

    @property
    def retry(self) -> Retry:
        """The retry policy of every mounted adapter whose retries were never configured (see :meth:`mount`);
        set a :class:`RetryPolicy`, a urllib3 ``Retry``, an int, ``False`` (none) or ``None`` (default)."""
        return self._retry

    @retry.setter
    def retry(self, value: Retry | int | bool | None) -> None:
        previous: Retry | None = getattr(self, "_retry", None)
        self._retry = as_retry_policy(value)
        for adapter in getattr(self, "adapters", {}).values():
            if follows_session_retry(adapter, previous):
                adapter.max_retries = self._retry

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The circuit breaker; set a :class:`CircuitBreaker`, ``True`` (a new default one) or
        ``False``/``None`` (none)."""
        return self._breaker

    @breaker.setter
    def breaker(self, value: CircuitBreaker | bool | None) -> None:
        self._breaker: CircuitBreaker | None = policy_option(value, CircuitBreaker, "breaker")

    @property
    def budget(self) -> RetryBudget | None:
        """The retry budget; set a :class:`RetryBudget`, ``True`` or ``False``/``None``."""
        return self._budget

    @budget.setter
    def budget(self, value: RetryBudget | bool | None) -> None:
        self._budget: RetryBudget | None = policy_option(value, RetryBudget, "budget")

    @property
    def bulkhead(self) -> Bulkhead | None:
        """The bulkhead; set a :class:`Bulkhead`, ``True`` or ``False``/``None``."""
        return self._bulkhead

    @bulkhead.setter
    def bulkhead(self, value: Bulkhead | bool | None) -> None:
        self._bulkhead: Bulkhead | None = policy_option(value, Bulkhead, "bulkhead")

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate limit; set a :class:`RateLimit`, ``True`` or ``False``/``None``."""
        return self.__dict__.get("_rate_limit")  # absent from sessions pickled before it existed

    @rate_limit.setter
    def rate_limit(self, value: RateLimit | bool | None) -> None:
        self._rate_limit: RateLimit | None = policy_option(value, RateLimit, "rate_limit")

    @property
    def timeout(self) -> TimeoutArg:
        """The default ``(connect, read)`` timeout of a call that passes none; set a number, a pair (a part
        may be ``None``: no bound), a urllib3 ``Timeout`` or ``None`` (the library default)."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: TimeoutArg) -> None:
        check_session_option("timeout", value)
        self._timeout = value

    @property
    def base_url(self) -> str | None:
        """Relative URLs are joined to it; an ``http://`` or ``https://`` URL with a host, or ``None``."""
        return self._base_url

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        check_session_option("base_url", value)
        self._base_url = value

    @property
    def deadline(self) -> float | None:
        """Seconds for each whole call, or ``None``."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._deadline = _seconds(value, "deadline")

    @property
    def max_response_size(self) -> int | None:
        """Decoded bytes a non-streamed body may have, or ``None`` (default): no limit, as in requests."""
        return self._max_response_size

    @max_response_size.setter
    def max_response_size(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"max_response_size must be a number of bytes or None, not {value!r}")
        self._max_response_size = value

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """Origins besides ``base_url``'s that the constructor's credentials may be sent to, normalized
        (``scheme://host:port``); set a URL, a list of them, or ``None``."""
        return self._allowed_origins

    @allowed_origins.setter
    def allowed_origins(self, value: str | Iterable[str] | None) -> None:
        self._allowed_origins = _origins.parse_origins(value)

    def mount(self, prefix: str | bytes, adapter: BaseAdapter) -> None:
        """As :meth:`requests.Session.mount`; an adapter whose retries were never configured (a
        :class:`ResilientAdapter` given no policy, an ``HTTPAdapter()`` left at requests' default
        ``max_retries``) takes this session's ``retry``, now and whenever it changes."""
        retry: Retry | None = getattr(self, "_retry", None)  # None while requests.Session.__init__ mounts
        if retry is not None and follows_session_retry(adapter):
            adapter.max_retries = retry  # type: ignore[attr-defined]
        super().mount(prefix, adapter)

    def __repr__(self) -> str:
        # A base URL may carry a password or an API key in its query string.
        base_url = redact_url(self.base_url) if self.base_url else self.base_url
        return f"<{type(self).__name__} base_url={base_url!r}>"

    @classmethod
    def from_config(cls, source: str | os.PathLike[str] | Mapping[str, Any], name: str | None = None) -> Self:
        """The session of integration *name* in an integrations file (TOML path or parsed mapping).

        Without *name* the file must define exactly one integration. For every integration at once, use
        :func:`~resilient_session.load_integrations`. The schema is in ``docs/configuration.md``.

        :raises InvalidConfigError: the file is invalid or names an unset environment variable.
        """
        # Imported here: the config package also builds sessions (config.sessions imports this module).
        from .config.load import integration

        return cls.from_integration(integration(source, name))

    @classmethod
    def from_integration(cls, config: IntegrationConfig) -> Self:
        """The session of one validated integration (an item of :func:`~resilient_session.load_config`)."""
        session = cls(**config.session_kwargs())
        session.headers.update(config.headers)
        session.allowed_origins = config.allowed_origins
        if config.auth is not None:
            session._bound_auth = session.auth  # the file's credentials, whatever the constructor did
        return session

    # -- redirects -------------------------------------------------------------------------------

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        """As requests, but a cross-origin hop loses every credential, not only ``Authorization``.

        Headers and query keys set by a :class:`~resilient_session.auth.CredentialAuth`, and headers named
        like secrets (``X-API-Key``, ``X-Auth-Token`` ...), are removed; same-origin hops keep them.
        """
        previous = response.request
        if previous is not None and previous.url and prepared_request.url:
            cross_origin: bool = self.should_strip_auth(  # type: ignore[no-untyped-call]
                previous.url, prepared_request.url
            )
            carry_credentials(previous, prepared_request, cross_origin=cross_origin)
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]

    # -- URLs ------------------------------------------------------------------------------------

    def join_url(self, url: str | bytes) -> str | bytes:
        """*url* joined to ``base_url`` when it is relative; absolute URLs come back unchanged.

        A subclass that also derives from requests-toolbelt's ``BaseUrlSession`` joins as toolbelt
        does (its ``create_url``: ``urljoin``), whichever of the two comes first in its bases.
        """
        create_url = getattr(self, "create_url", None)
        if create_url is not None and self.base_url and isinstance(url, str):
            return str(create_url(url))
        if not self.base_url or isinstance(url, bytes) or "://" in url[:16]:
            return url
        if not url:
            return self.base_url
        if url[0] in "?#":
            # A bare query or fragment belongs to base_url itself, not to a child path below it.
            return self.base_url.split("#", 1)[0].split("?", 1)[0] + url
        return self.base_url.rstrip("/") + "/" + url.lstrip("/")

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if self.base_url and isinstance(request.url, str) and request.url != self.join_url(request.url):
            request = copy.copy(request)
            request.url = self.join_url(request.url)
        request = _origins.without_bound_auth(
            request,
            auth=self.auth,
            bound=self._bound_auth,
            base_url=self.base_url,
            extra=self._allowed_origins,
            trust_env=self.trust_env,
            integration=getattr(self, "integration", None),
        )
        mirrored = (
            _environ.REPLICATES_REQUESTS
            and OriginalSession.prepare_request is _environ.PREPARE_REQUEST
            and "prepare_request" in self._plain_super
        )
        if mirrored:
            # The common shape, from remembered parts, the request id header included (no auth runs).
            prepared = _prepare.prepare_simple(self, request, self.request_id_header)
            if prepared is not None:
                return prepared
        if self.request_id_header:
            # Before preparing, which runs auth: a scheme that signs every header signs this one too.
            request = with_request_id(request, self.request_id_header, self.headers)
        if mirrored:
            return _environ.prepare_request(self, request)  # requests' steps, netrc look-up remembered
        return super().prepare_request(request)

    # -- environment -----------------------------------------------------------------------------

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        """As requests, with what it reads from the environment remembered until the environment changes.

        Proxy variables, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` and the netrc file are
        seen on the next call after any change, as requests sees them; see :mod:`resilient_session._environ`.
        """
        return _environ.merge_environment_settings(
            self, url, proxies, stream, verify, cert, super().merge_environment_settings
        )

    # -- sending ---------------------------------------------------------------------------------

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        *args: Any,
        deadline: float | None = None,
        allow_stale: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """As :meth:`requests.Session.request`, plus ``deadline=`` (seconds) for this call alone, and
        ``allow_stale=False`` to refuse a degraded answer (see the ``degrade`` option).

        The deadline starts here, so preparing the request (an OAuth2 token fetch included) counts.
        """
        if (
            isinstance(url, str)
            and self._knows_open_circuits()
            and not self._answers_open(method, url, allow_stale)
        ):
            self._fail_fast(method, url)
        call = self._begin(method, url, self.deadline if deadline is None else _seconds(deadline, "deadline"))
        if not allow_stale:
            call.extras["allow_stale"] = False
        token = enter(call)
        try:
            if getattr(self, "cache", None) is not None and _degrade.fronted(self):
                response = _degrade.through_cache(self, call, super().request, method, url, *args, **kwargs)
                # requests-cache hands back its own response classes (it even reassigns a fresh
                # response's class): the view goes on what the caller gets.
                ensure_normalized(response)
                return response
            return super().request(method, url, *args, **kwargs)
        finally:
            leave(token)
            if call.watched:
                call.unwatch()

    if TYPE_CHECKING:
        # requests' type stubs spell out each verb's keywords, without ``deadline``; these say it is
        # accepted. At run time requests' own verbs pass every keyword on to request() above.
        def get(
            self, url: str | bytes, *, deadline: float | None = None, **kwargs: Any
        ) -> requests.Response: ...
        def options(
            self, url: str | bytes, *, deadline: float | None = None, **kwargs: Any
        ) -> requests.Response: ...
        def head(
            self, url: str | bytes, *, deadline: float | None = None, **kwargs: Any
        ) -> requests.Response: ...
        def post(
            self,
            url: str | bytes,
            data: Any = None,
            json: Any = None,
            *,
            deadline: float | None = None,
            **kwargs: Any,
        ) -> requests.Response: ...
        def put(
            self, url: str | bytes, data: Any = None, *, deadline: float | None = None, **kwargs: Any
        ) -> requests.Response: ...
        def patch(
            self, url: str | bytes, data: Any = None, *, deadline: float | None = None, **kwargs: Any
        ) -> requests.Response: ...
        def delete(
            self, url: str | bytes, *, deadline: float | None = None, **kwargs: Any
        ) -> requests.Response: ...

    def _begin(
        self, method: str | bytes | None, url: str | bytes | None, deadline: float | None
    ) -> CallState:
        # A call made while another is in progress (from a hook, say) ends by the outer call's deadline.
        outer = current_call()
        call = CallState.begin(
            method.decode() if isinstance(method, bytes) else method,
            url.decode() if isinstance(url, bytes) else url,
            default_timeout=self.timeout,
            owner=self,
        )
        if deadline is not None:
            call.tighten_deadline(deadline)
        if outer is not None and outer.deadline_at is not None:
            call.tighten_deadline(outer.deadline_at - call.started)
        if call.deadline_at is not None:
            call.watch()
        return call

    def get_adapter(self, url: str) -> BaseAdapter:
        """As :meth:`requests.Session.get_adapter`; while this session sends, an adapter that is not a
        :class:`ResilientAdapter` comes back wrapped, so its calls get the framework too."""
        adapter: BaseAdapter = super().get_adapter(url)
        if isinstance(adapter, ResilientAdapter):
            return adapter
        # requests' Session.send looks the adapter up by URL alone, first thing: the call context says
        # whether this is that look-up (the adapter's send clears ``sending``; nothing changes here).
        call = current_call()
        if call is None or call.owner is not self or not call.sending:
            return adapter
        return MountedAdapter(adapter)

    def _knows_open_circuits(self) -> bool:
        # Cheap guard for the common case: no breaker of ours has noted an open circuit.
        if self._breaker is not None and self._breaker.store.hints:
            return True
        for adapter in self.adapters.values():
            breaker = getattr(adapter, "breaker", None)
            if breaker and breaker.store.hints:
                return True
        return False

    def _answers_open(self, method: str | bytes, url: str, allow_stale: bool) -> bool:
        # A call the degrade policy may answer, or one a requests-cache CacheMixin in front of this class
        # may answer from its cache, meets the open circuit in the adapter, after the request is prepared.
        return _degrade.fronted(self) or _degrade.may_answer(
            self, method, str(self.join_url(url)), allow_stale
        )

    def _fail_fast(self, method: str | bytes, url: str) -> None:
        # Before requests prepares anything (merging settings and reading proxy variables from the
        # environment alone takes ~0.2 ms), so an open circuit refuses in microseconds.
        absolute = str(self.join_url(url))
        try:
            adapter = super().get_adapter(absolute)
        except requests.exceptions.InvalidSchema:
            return  # requests reports it, as it always did
        name = (method.decode() if isinstance(method, bytes) else method).upper()
        try:
            refuse_if_open(adapter, name, absolute, self)
        except CircuitOpenError as error:
            report_refused(self, name, absolute, error)
            raise

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """As :meth:`requests.Session.send`; the first send of a call owns its state and deadline."""
        call = current_call()
        if call is not None and call.owner is self and call.sent:
            # A redirect hop or a re-send from a hook: part of the call already in progress.
            return self._send(call, request, kwargs)
        token = None
        if call is None or call.owner is not self:
            # send() called directly, not through request(): the caller's PreparedRequest, which other
            # threads may be sending too, carries nothing; the adapter finds the call in the context.
            call = self._begin(request.method, request.url, self.deadline)
            token = enter(call)
        call.sent = True
        call.raw_url = request.url or call.raw_url
        call.extras.pop("redacted_url", None)
        observer = call.observer = begin_call(self, call, request)
        try:
            try:
                response = self._send(call, request, kwargs, carried=token is None)
            except Exception as exc:
                # A degrade policy may answer in place of the failure (None: it does not).
                stand_in = _degrade.instead_of_error(self, call, request, exc, kwargs)
                if stand_in is None:
                    raise
                response = stand_in
            else:
                if self.degrade is not None:
                    response = _degrade.after_response(self, call, request, response, kwargs)
        except BaseException as exc:
            if observer is not None and not _degrade.defer_report(call, observer, error=exc):
                end_call(observer, call, error=exc)
            raise
        finally:
            if token is not None:
                leave(token)
                call.unwatch()
        if response.history or not isinstance(response, NormalizableResponse):
            ensure_normalized(response)  # a plain adapter the user mounted does not attach it
        response._resilient_session = self  # type: ignore[attr-defined]  # into(): integration, drift, events
        if observer is not None and not _degrade.defer_report(call, observer, response=response):
            end_call(observer, call, response=response)
        if self.raise_for_status:
            error = status_error_for(response, attempts=call.attempts, elapsed=call.elapsed())
            if error is not None:
                raise error
        return response

    def _send(
        self,
        call: CallState,
        request: requests.PreparedRequest,
        kwargs: dict[str, Any],
        *,
        carried: bool = True,
    ) -> requests.Response:
        """requests' send, through :func:`send_again_if_broken`.

        *carried*: the request was made for this call (by :meth:`request`, or a redirect hop's copy), so
        the call's state travels with it to the adapter."""
        if carried:
            carry(request, call)
        try:
            if "send" in self._plain_super and _send.mirrors_now(self):
                return send_again_if_broken(call, self._requests_send, request, kwargs)
            return send_again_if_broken(call, super().send, request, kwargs)
        finally:
            if carried:
                drop(request)

    def _requests_send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """requests' ``Session.send`` (its steps, skipping those that change nothing: see ``_send``)."""
        return _send.send(self, request, **kwargs)


def send_again_if_broken(
    call: CallState,
    send: Callable[..., requests.Response],
    request: requests.PreparedRequest,
    kwargs: dict[str, Any],
) -> requests.Response:
    """``send(request, **kwargs)`` (requests' ``Session.send``); when a body broke off after the response
    hooks (a hook's read or requests' own), the hop goes again: the adapter continues its retry chain, the
    hooks see the new answer."""
    try:
        while True:
            call.sending = True  # requests looks the adapter up first (see get_adapter)
            try:
                return send(request, **kwargs)
            except requests.RequestException as exc:
                broken = call.broken_after_hooks
                if broken is None or broken.error is not exc or broken.resend:
                    raise
                broken.resend = True
    finally:
        call.sending = False
        if call.broken_after_hooks is not None and call.broken_after_hooks.resend:
            call.broken_after_hooks = None  # the send again ended before reaching an adapter


def _plain_super(cls: type[ResilientSession]) -> frozenset[str]:
    return frozenset(
        name for name in ("prepare_request", "send") if inherits_from_requests(cls, ResilientSession, name)
    )


ResilientSession._plain_super = _plain_super(ResilientSession)


# Options stored by a property of ours in ``_<name>``.
_PROPERTIES = frozenset(
    {
        *("base_url", "timeout", "retry", "breaker", "budget", "bulkhead", "deadline", "max_response_size"),
        *("allowed_origins", "rate_limit"),
    }
)


def _seconds(value: Any, name: str) -> float | None:
    check_session_option(name, value)
    return None if value is None else float(value)
