"""Retry policy: urllib3's :class:`~urllib3.util.Retry` with full jitter, a cap and idempotency keys."""

from __future__ import annotations

import difflib
import inspect
import random
import ssl
from collections.abc import Collection
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import (
    MaxRetryError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from ._options import Option, check_options, check_session_option
from .errors import parse_retry_after

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_STATUS_FORCELIST", "RetryPolicy", "as_retry_policy"]

#: Statuses that mean "try again later" rather than "you are wrong".
DEFAULT_STATUS_FORCELIST = frozenset({429, 502, 503, 504})


_COUNT = Option("count", nullable=True)


def _exhausted_count(option: Option, value: Any) -> bool:
    # increment() hands new() a counter of -1 to mean "exhausted"; only a copy may carry one.
    return option.kind == "count" and isinstance(value, int) and value < 0


#: Options of urllib3's ``Retry`` that requests never lets apply: it passes ``redirect=False`` to urllib3
#: and follows redirects itself (``Session.max_redirects``, ``allow_redirects=``).
_REDIRECT_OPTIONS = ("redirect", "raise_on_redirect", "remove_headers_on_redirect")


class RetryPolicy(Retry):
    """When and how long to wait before trying a request again.

    A :class:`urllib3.util.Retry` (so it works wherever urllib3 or ``requests`` accept ``max_retries``,
    including ``responses`` mocks) with these defaults and additions. Every option of urllib3's
    ``Retry`` is honoured, except the redirect options, which are refused (see below).

    :param total: Retries after the first attempt; one call sends at most ``total + 1`` requests to a
        URL, whatever mix of statuses, connection errors and broken bodies it meets. Default 3.
    :type connect: int | None
    :param connect: Connection errors retried, as in urllib3 (default: bounded by ``total``).
    :type read: int | bool | None
    :param read: Read errors retried, as in urllib3 (default: bounded by ``total``); it also bounds
        bodies that break off mid-way.
    :type status: int | None
    :param status: Retryable statuses retried, as in urllib3 (default: bounded by ``total``).
    :type other: int | None
    :param other: Other errors retried, as in urllib3 (default: bounded by ``total``).
    :param backoff_factor: Base ``b`` of the backoff, in seconds. Before retry ``n`` (1, 2, ...) the
        policy sleeps a uniformly random time in ``[0, min(backoff_max, b * 2 ** (n - 1))]``
        ("full jitter", so a fleet of clients does not retry in lockstep). Default 0.5.
    :param backoff_max: The cap on any single wait, backoff or ``Retry-After``. Default 30.
    :type backoff_jitter: float
    :param backoff_jitter: As in urllib3: a random ``[0, backoff_jitter]`` seconds added to each
        backoff (still capped by ``backoff_max``). Default 0.
    :param full_jitter: ``False`` sleeps the ceiling itself (deterministic exponential backoff).
    :param status_forcelist: Statuses retried. Default ``{429, 502, 503, 504}``.
    :type allowed_methods: Collection[str] | None
    :param allowed_methods: Methods retried on read errors and statuses. Default: urllib3's idempotent
        set (DELETE, GET, HEAD, OPTIONS, PUT, TRACE); ``None`` retries every method.
    :param idempotency_key_header: A request carrying this header is retried even when its method is
        in ``idempotency_key_methods``. Default ``"Idempotency-Key"``.
    :param idempotency_key_methods: Default ``{"POST", "PATCH"}``.
    :type respect_retry_after_header: bool
    :param respect_retry_after_header: Honour ``Retry-After`` on 429 and 503 (capped by ``backoff_max``,
        ``retry_after_max`` and the call's remaining deadline). Default True.
    :type retry_after_max: float
    :param retry_after_max: As in urllib3: the longest ``Retry-After`` honoured, in seconds (the
        smaller of it and ``backoff_max`` applies).
    :param raise_on_status: Default False: when retries run out on a retryable status, the last
        response is returned, as ``requests`` does; True raises ``RetryExhaustedError``.
    :param retry_read_timeouts: Default False: a read timeout (the upstream accepted the request and
        went silent) is raised at once, so ``timeout=5`` still means an answer or an error in about
        5 s, as in plain requests, and a struggling upstream is not sent the same slow request again.
        True retries them like other read errors (bound the total with the session's ``deadline``).

    The redirect options (``redirect``, ``raise_on_redirect``, ``remove_headers_on_redirect``) are refused
    with ``ValueError``: requests follows redirects itself and never lets a ``Retry`` see one; use
    ``session.max_redirects`` and ``allow_redirects=``.

    Connection errors (nothing was sent, connect timeouts included) are retried for every method, and
    connections dropped before an answer for the ``allowed_methods``, as in urllib3. TLS failures that
    another attempt cannot fix (certificate verification, hostname mismatch, protocol mismatch) are
    raised at once; a handshake the server broke off (EOF, reset) is a connection error and retried.
    A request whose body cannot be rewound (a generator, a pipe) is never retried.

    Each option is checked against :attr:`OPTIONS` when the policy is made or changed with :meth:`new`
    (``TypeError`` for a wrong type, ``ValueError`` for a value out of bounds, naming ``RetryPolicy`` and
    the option; an unknown option, ``backof_factor`` say, is a ``TypeError`` too); the integrations file
    checks its ``retry`` table with the same specs.

    The policy is immutable: :meth:`increment` and :meth:`new` return changed copies that keep the
    subclass and every option. It is data: a session's adapters send one attempt at a time and ask it
    (``is_retry``, ``increment``, ``get_retry_after``, ``get_backoff_time``) what an outcome means; the
    deadline, the retry budget and the circuit breaker are applied by the session around those answers.
    It never does I/O other than the sleep urllib3 asks of it when used outside a session.
    """

    DEFAULT_BACKOFF_MAX = 30

    #: The plain-data options and what each accepts (the integrations file's ``retry`` table).
    OPTIONS: ClassVar[dict[str, Option]] = {
        "total": _COUNT,
        "connect": _COUNT,
        "read": _COUNT,
        "status": _COUNT,
        "other": _COUNT,
        "backoff_factor": Option("number"),
        "backoff_max": Option("number"),
        "backoff_jitter": Option("number"),
        "full_jitter": Option("boolean"),
        "status_forcelist": Option("statuses", nullable=True),
        "allowed_methods": Option("methods", nullable=True),
        "respect_retry_after_header": Option("boolean"),
        "retry_after_max": Option("number"),
        "raise_on_status": Option("boolean"),
        "idempotency_key_header": Option("header"),
        "idempotency_key_methods": Option("methods"),
        "retry_read_timeouts": Option("boolean"),
    }

    def __init__(
        self,
        total: bool | int | None = 3,
        *,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        full_jitter: bool = True,
        status_forcelist: Collection[int] | None = DEFAULT_STATUS_FORCELIST,
        raise_on_status: bool = False,
        idempotency_key_header: str = "Idempotency-Key",
        idempotency_key_methods: Collection[str] = ("POST", "PATCH"),
        retry_read_timeouts: bool = False,
        _copy: bool = False,
        **kwargs: Any,
    ) -> None:
        if not _copy:
            _refuse_redirect_options(total, kwargs)
            given = {
                "total": total,
                "backoff_factor": backoff_factor,
                "backoff_max": backoff_max,
                "full_jitter": full_jitter,
                "status_forcelist": status_forcelist,
                "raise_on_status": raise_on_status,
                "idempotency_key_header": idempotency_key_header,
                "idempotency_key_methods": idempotency_key_methods,
                "retry_read_timeouts": retry_read_timeouts,
            }
            _refuse_unknown_options(kwargs)
            given.update((name, value) for name, value in kwargs.items() if name in self.OPTIONS)
            _check(self.OPTIONS, given)
        super().__init__(
            total,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            status_forcelist=status_forcelist,
            raise_on_status=raise_on_status,
            **kwargs,
        )
        self.full_jitter = full_jitter
        self.idempotency_key_header = idempotency_key_header
        self.idempotency_key_methods = frozenset(m.upper() for m in idempotency_key_methods)
        self.retry_read_timeouts = retry_read_timeouts

    def new(self, **kw: Any) -> Self:
        params: dict[str, Any] = {
            "full_jitter": self.full_jitter,
            "idempotency_key_header": self.idempotency_key_header,
            "idempotency_key_methods": self.idempotency_key_methods,
            "retry_read_timeouts": self.retry_read_timeouts,
        }
        params.update(kw)
        _refuse_redirect_options(kw.get("total", self.total), kw)
        _refuse_unknown_options(kw)
        _check(
            self.OPTIONS,
            {k: v for k, v in kw.items() if k in self.OPTIONS and not _exhausted_count(self.OPTIONS[k], v)},
        )
        # A copy's values were checked when the policy was made, and urllib3 counts an exhausted counter
        # down to -1, which a caller may not ask for but a copy must carry.
        params["_copy"] = True
        return super().new(**params)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(total={self.total}, connect={self.connect}, read={self.read}, "
            f"status={self.status}, backoff_factor={self.backoff_factor}, backoff_max={self.backoff_max})"
        )

    # -- decisions -------------------------------------------------------------------------------

    def get_backoff_time(self) -> float:
        """The wait before the next retry: full jitter over the capped exponential ceiling."""
        consecutive = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            consecutive += 1
        if consecutive == 0 or not self.backoff_factor:
            return 0.0
        ceiling = min(self.backoff_max, self.backoff_factor * 2 ** (consecutive - 1))
        wait = random.uniform(0.0, ceiling) if self.full_jitter else ceiling
        if self.backoff_jitter:
            wait += random.random() * self.backoff_jitter
        return min(self.backoff_max, wait)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """``Retry-After`` in seconds (delta or HTTP date), capped by ``backoff_max`` and ``retry_after_max``;
        ``None`` when absent or unreadable."""
        seconds = parse_retry_after(response.headers.get("Retry-After"))
        if seconds is None:
            return None
        return min(seconds, self.backoff_max, getattr(self, "retry_after_max", self.backoff_max))

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if isinstance(error, ReadTimeoutError) and not self.retry_read_timeouts:
            # The same signal urllib3 gives for a read error it will not retry: re-raise it as is.
            raise error.with_traceback(_stacktrace)
        if error is not None and is_permanent_tls_error(error):
            # Another handshake meets the same certificate: fail after one, as plain requests does.
            raise MaxRetryError(_pool, url, error)  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)


#: Every keyword RetryPolicy takes: its own and urllib3 ``Retry``'s (``history`` is how copies are made).
_KNOWN_OPTIONS = frozenset(
    {*inspect.signature(Retry.__init__).parameters, *inspect.signature(RetryPolicy.__init__).parameters}
) - {"self", "kwargs"}


def _refuse_unknown_options(kwargs: dict[str, Any]) -> None:
    # Refused here, by name: urllib3 would raise a TypeError naming Retry.__init__, not the policy made.
    for name in kwargs:
        if name not in _KNOWN_OPTIONS:
            close = difflib.get_close_matches(name, sorted(_KNOWN_OPTIONS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"RetryPolicy got an unknown option {name!r}{hint}")


def _check(options: dict[str, Option], values: dict[str, Any]) -> None:
    """:func:`check_options`, its message naming RetryPolicy (the option's name follows)."""
    try:
        check_options(options, values)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"RetryPolicy {exc}") from None


def _refuse_redirect_options(total: bool | int | None, kwargs: dict[str, Any]) -> None:
    # Retry.new() passes these back with their current values: refuse only what a caller changed.
    redirect = kwargs.get("redirect")
    changed = [
        name
        for name, value in (
            ("redirect", redirect not in (None, 0, False)),
            (
                "raise_on_redirect",
                kwargs.get("raise_on_redirect", True) is False
                and total is not False
                and redirect not in (0, False),
            ),
            (
                "remove_headers_on_redirect",
                "remove_headers_on_redirect" in kwargs
                and frozenset(h.lower() for h in kwargs["remove_headers_on_redirect"])
                != frozenset(h.lower() for h in Retry.DEFAULT_REMOVE_HEADERS_ON_REDIRECT),
            ),
        )
        if value
    ]
    if changed:
        raise ValueError(
            f"RetryPolicy does not take {', '.join(changed)}: requests follows redirects itself and never "
            "lets a Retry see one; use session.max_redirects and allow_redirects= instead"
        )


def is_permanent_tls_error(error: BaseException) -> bool:
    """True for a TLS failure that another attempt cannot fix: certificate verification (unknown CA,
    expired, hostname mismatch) or a protocol mismatch. A handshake broken off (EOF, reset) is not."""
    seen: BaseException | None = error
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if isinstance(seen, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError)):
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        if isinstance(seen, SSLError):
            inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
            if inner is None:
                return "CERTIFICATE_VERIFY_FAILED" in str(seen)
            seen = inner
            continue
        return False
    return False


def as_retry_policy(retry: Retry | int | bool | None) -> Retry:
    """Turn the ``retry=`` option into a :class:`~urllib3.util.Retry`.

    ``None`` gives the default :class:`RetryPolicy`, an int ``n`` gives ``RetryPolicy(total=n)``,
    ``False`` disables retries (plain requests' own ``Retry(0, read=False)``), a ``Retry`` is used as is.
    """
    check_session_option("retry", retry)
    if retry is None or retry is True:
        return RetryPolicy()
    if retry is False:
        return RetryPolicy(0, read=False)
    if isinstance(retry, Retry):
        return retry
    return RetryPolicy(int(retry))
