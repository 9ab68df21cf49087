"""OAuth2 bearer tokens for API calls: the client-credentials and refresh-token grants.

Built on requests-oauthlib and oauthlib (install the ``oauth`` extra); both are imported only when an
OAuth2 auth object is created, so the rest of the package works without them. requests-oauthlib cannot
renew a client-credentials token by itself (it has no refresh token, and its ``auto_refresh_url`` path
posts a ``refresh_token`` grant), so the token lifecycle lives here: cache, renew before expiry,
single-flight renewal across threads, and one renewal plus re-send when the API answers 401.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urljoin

import requests
from requests.auth import HTTPBasicAuth
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import UnrewindableBodyError
from requests.models import PreparedRequest
from requests.utils import rewind_body

from .._call import nested
from .._compat.requests import body_position, request_cookie_jar
from .._redact import REDACTED, redact_text, redact_url, scrubbed_exception
from ..adapter import ResilientAdapter
from ..errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    DeadlineExceededError,
    OAuth2TokenError,
    TokenEndpointError,
    TokenEndpointTimeout,
)
from .keys import CredentialAuth, env_secret, is_header_safe

__all__ = ["OAuth2ClientCredentials", "OAuth2RefreshToken"]

log = logging.getLogger("resilient_session.oauth2")

Clock = Callable[[], float]
Scope = str | Sequence[str] | None
TokenSaver = Callable[[dict[str, Any]], None]
TimeoutArg = float | tuple[float, float]

# requests' own helpers, typed.
_register_hook = cast(
    Callable[[PreparedRequest, str, Callable[..., Any]], None], PreparedRequest.register_hook
)
_extract_cookies = cast(Callable[[Any, Any, Any], None], extract_cookies_to_jar)

# Statuses meaning "the endpoint is unwell", not "your credentials are wrong".
_UNAVAILABLE = frozenset({408, 429})
# oauthlib's codes for an answer that held no token at all (an HTML error page, an empty body).
_NOT_A_TOKEN = frozenset({"missing_token", "missing_token_type"})


def _oauth_libs() -> None:
    try:
        import oauthlib.oauth2  # noqa: F401
        import requests_oauthlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "OAuth2 support needs the 'oauth' extra: pip install 'resilient-session[oauth]'"
        ) from exc


@dataclass(frozen=True, repr=False)
class _Token:
    """A cached access token; times are on the auth object's clock."""

    access_token: str
    refresh_at: float | None
    expires_at: float | None
    raw: Mapping[str, Any]

    def __repr__(self) -> str:
        return (
            f"_Token(access_token={REDACTED!r}, refresh_at={self.refresh_at}, expires_at={self.expires_at})"
        )


class _OAuth2Auth(CredentialAuth):
    """Token cache, renewal and the 401 re-send shared by the OAuth2 grants."""

    header_names = frozenset({"Authorization"})

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None,
        *,
        scope: Scope,
        leeway: float,
        timeout: TimeoutArg,
        verify: bool | str,
        clock: Clock,
    ) -> None:
        _oauth_libs()
        from oauthlib.oauth2.rfc6749.utils import is_secure_transport

        if not token_url:
            raise ConfigurationError("token_url must be a non-empty string")
        if not is_secure_transport(token_url):
            raise ConfigurationError(
                "token_url must use https (OAUTHLIB_INSECURE_TRANSPORT=1 allows http for local testing)",
                url=token_url,
            )
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id must be a non-empty string")
        if leeway < 0:
            raise ConfigurationError("leeway must be >= 0 seconds")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope: list[str] | None = [scope] if isinstance(scope, str) else list(scope) if scope else None
        self.leeway = float(leeway)
        self.timeout = timeout
        self.verify = verify
        self._clock = clock
        # Re-entrant so a token_saver that asks for the token does not deadlock.
        self._lock = threading.RLock()
        self._token: _Token | None = None
        super().__init__()

    def __getstate__(self) -> dict[str, Any]:
        # A session pickles its auth; the lock cannot travel and the cached token should not.
        state = self.__dict__.copy()
        del state["_lock"]
        state["_token"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        CredentialAuth.__init__(self)

    # -- what subclasses provide -------------------------------------------------------------------

    def _request_token(self, session: Any) -> Mapping[str, Any]:
        """Call the token endpoint through the requests-oauthlib *session*; return the token dict."""
        raise NotImplementedError

    def _new_session(self) -> Any:
        from requests_oauthlib import OAuth2Session

        return OAuth2Session(client_id=self.client_id, scope=self.scope)

    def _stored(self, token: _Token) -> None:
        """Called (under the lock) after a new token was obtained."""

    # -- public ------------------------------------------------------------------------------------

    def get_token(self) -> str:
        """A valid access token: the cached one, or a new one if none is cached or it is due for renewal.

        Renewal is due *leeway* seconds before expiry (at most half the token's lifetime before it). One
        thread renews while the others wait for its result. If renewal fails while the cached token has
        not expired yet, the cached token is used and a warning logged.
        """
        token = self._token
        if token is not None and not self._due(token):
            return token.access_token
        with self._lock:
            token = self._token
            if token is not None and not self._due(token):
                return token.access_token
            try:
                return self._renew().access_token
            except APIError as exc:
                if token is None or not self._usable(token):
                    raise
                log.warning("OAuth2 token renewal failed (%s); using the current token until it expires", exc)
                return token.access_token

    def invalidate(self) -> None:
        """Forget the cached access token; the next request obtains a new one."""
        with self._lock:
            self._token = None

    @property
    def secret_values(self) -> tuple[str, ...]:
        values = [self._client_secret] if self._client_secret else []
        if self._client_secret:
            # What HTTP Basic client authentication encodes: redaction then also catches its base64
            # (with or without the halves form-encoded first, see _redact.secret_forms).
            values.append(f"{self.client_id}:{self._client_secret}")
        token = self._token
        if token is not None:
            values.append(token.access_token)
            refresh = token.raw.get("refresh_token")
            if isinstance(refresh, str):
                values.append(refresh)
        return tuple(values)

    # -- requests hooks ----------------------------------------------------------------------------

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.get_token()}"
        _register_hook(r, "response", self._handle_401)
        self._remember(r)
        return r

    def _handle_401(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        """On a 401 to our token: renew it once and re-send; a second 401 raises AuthenticationError."""
        request = r.request
        sent = request.headers.get("Authorization", "") if request is not None else ""
        if r.status_code != 401 or request is None or not sent.startswith("Bearer "):
            # No bearer token on this hop (e.g. requests stripped it on a cross-origin redirect): not ours.
            return r
        where = f"{request.method} {redact_url(request.url)}"
        token = self._renew_rejected(sent[len("Bearer ") :])
        if not _rewind(request):
            log.warning("401 from %s; OAuth2 token renewed, body cannot be re-sent", where)
            return r
        log.info("401 from %s; OAuth2 token renewed, re-sending once", where)
        r.content  # noqa: B018 - drain so the connection goes back to the pool
        r.close()
        retry = request.copy()
        jar = request_cookie_jar(retry)
        if jar is not None:
            _extract_cookies(jar, request, r.raw)
            retry.prepare_cookies(jar)
        retry.headers["Authorization"] = f"Bearer {token}"
        self._remember(retry)
        response = r.connection.send(retry, **kwargs)
        response.history.append(r)
        response.request = retry
        if response.status_code == 401:
            raise AuthenticationError(
                "401 Unauthorized again after renewing the OAuth2 token", request=retry, response=response
            )
        return response

    # -- token lifecycle ---------------------------------------------------------------------------

    def _due(self, token: _Token) -> bool:
        return token.refresh_at is not None and self._clock() >= token.refresh_at

    def _usable(self, token: _Token) -> bool:
        return token.expires_at is None or self._clock() < token.expires_at

    def _renew_rejected(self, rejected: str) -> str:
        with self._lock:
            current = self._token
            if current is not None and current.access_token != rejected:
                return current.access_token  # another thread already renewed it
            return self._renew().access_token

    def _renew(self) -> _Token:
        token = self._call_token_endpoint()
        self._token = token
        self._stored(token)
        return token

    def _call_token_endpoint(self) -> _Token:
        from oauthlib.oauth2 import OAuth2Error

        started = self._clock()
        statuses: list[int] = []

        def check_status(response: requests.Response) -> requests.Response:
            statuses.append(response.status_code)
            if response.status_code >= 500 or response.status_code in _UNAVAILABLE:
                raise TokenEndpointError(
                    f"token endpoint answered {response.status_code} {response.reason or ''}".rstrip(),
                    method="POST",
                    url=self.token_url,
                    status=response.status_code,
                )
            return response

        def stay_on_origin(response: requests.Response, **kwargs: Any) -> requests.Response:
            # A 307/308 re-sends the form body (client secret, refresh token) wherever Location points,
            # and requests strips only Authorization: a token request never leaves its origin.
            target = session.get_redirect_target(response)
            new_url = urljoin(response.url, target) if target is not None else None
            if new_url is not None and session.should_strip_auth(response.url, new_url):
                response.close()
                raise TokenEndpointError(
                    f"token endpoint redirected to another origin ({redact_url(new_url)}); not followed",
                    method="POST",
                    url=self.token_url,
                    status=response.status_code,
                )
            return response

        session = self._new_session()
        # Through our adapter (no retries, no breaker): the calling request's deadline reaches every
        # byte of the token request, which runs while that request is being prepared.
        for prefix in ("https://", "http://"):
            session.mount(prefix, ResilientAdapter(retry=False))
        session.register_compliance_hook("access_token_response", check_status)
        session.register_compliance_hook("refresh_token_response", check_status)
        session.hooks["response"].append(stay_on_origin)
        log.debug(
            "requesting an OAuth2 token from %s for client %s", redact_url(self.token_url), self.client_id
        )
        context: dict[str, Any] = {"method": "POST", "url": self.token_url}
        # Each failure is raised after the except block, never inside it: there the exception being
        # handled would stay attached as __context__ (even with "from None"), and it holds the request
        # (client secret, refresh token, Basic credentials) and the server's echo of it. A cause worth
        # keeping is chained as a scrubbed copy (scrubbed_exception).
        failure: APIError | None = None
        cause: BaseException | None = None
        try:
            with session, nested("POST", self.token_url):
                raw = self._request_token(session)
        except TokenEndpointError as exc:
            failure = exc  # raised by our hooks: its message holds the server's reason phrase
        except DeadlineExceededError:
            failure = DeadlineExceededError("the deadline ran out during the OAuth2 token request", **context)
        except requests.Timeout as exc:
            failure = TokenEndpointTimeout("token endpoint timed out", **context)
            cause = scrubbed_exception(exc, self._secrets())
        except requests.RequestException as exc:
            failure = TokenEndpointError(f"token endpoint unreachable ({type(exc).__name__})", **context)
            cause = scrubbed_exception(exc, self._secrets())
        except OAuth2Error as exc:
            status = statuses[-1] if statuses else exc.status_code
            if exc.error in _NOT_A_TOKEN:
                failure = TokenEndpointError(
                    "token endpoint answered without an access token", status=status, **context
                )
            else:
                description = f": {exc.description}" if exc.description else ""
                message = f"token endpoint refused the grant ({exc.error}){description}"
                code = self._scrub(str(exc.error)) if exc.error is not None else None
                failure = OAuth2TokenError(message, error=code, status=status, **context)
        except Warning as exc:
            # oauthlib raises a Warning carrying the token when the server narrowed the requested scope.
            if getattr(exc, "token", None) is None:
                raise
            raw = exc.token  # type: ignore[attr-defined]
            log.info("token endpoint granted a different scope than requested: %s", exc)
        except ValueError as exc:
            failure = TokenEndpointError(f"token endpoint sent a malformed token ({exc})", **context)
        if failure is not None:
            failure.args = tuple(self._scrub(a) if isinstance(a, str) else a for a in failure.args)
            failure.__context__ = failure.__cause__ = None
            raise failure from cause
        return self._parse(raw, started, context)

    def _parse(self, raw: Mapping[str, Any], started: float, context: dict[str, Any]) -> _Token:
        access = raw.get("access_token")
        if not isinstance(access, str) or not access:
            raise TokenEndpointError("token endpoint answered without an access token", **context)
        if not is_header_safe(access):
            # http.client would refuse the header with a message that quotes the token.
            raise TokenEndpointError("token endpoint sent an access token with control characters", **context)
        refresh_at = expires_at = None
        expires_in = raw.get("expires_in")
        if expires_in is not None:
            try:
                lifetime = float(expires_in)
            except (TypeError, ValueError):
                raise TokenEndpointError("token endpoint sent a non-numeric expires_in", **context) from None
            expires_at = started + lifetime
            # A leeway longer than the lifetime would renew on every request: cap it at half the lifetime.
            refresh_at = started + max(lifetime - self.leeway, lifetime / 2)
        log.debug("obtained an OAuth2 token for client %s (expires_in=%s)", self.client_id, expires_in)
        stored = dict(raw)
        if expires_at is not None:
            stored["expires_at"] = expires_at
        return _Token(access, refresh_at, expires_at, stored)

    def _secrets(self) -> tuple[str, ...]:
        return self.secret_values

    def _scrub(self, text: str) -> str:
        return redact_text(text, self._secrets())

    def _repr_fields(self) -> str:
        secret = REDACTED if self._client_secret else None
        return (
            f"token_url={redact_url(self.token_url)!r}, client_id={self.client_id!r}, "
            f"client_secret={secret!r}, scope={self.scope!r}, leeway={self.leeway}"
        )


def _rewind(request: PreparedRequest) -> bool:
    """Make *request*'s body ready to be sent again; False when it cannot be (a consumed iterator)."""
    body: object = request.body  # typed bytes | str, but files and iterators are allowed too
    if body is None or isinstance(body, (bytes, str)):
        return True
    if body_position(request) is None:
        return False
    try:
        rewind_body(request)
    except UnrewindableBodyError:
        return False
    return True


class OAuth2ClientCredentials(_OAuth2Auth):
    """Bearer tokens from the OAuth2 client-credentials grant (RFC 6749 §4.4), for machine-to-machine APIs.

    The token is fetched on first use, cached, and fetched again *leeway* seconds before it expires (one
    fetch at a time, however many threads share this object). When the API answers 401 to a token, the
    token is fetched again and the request re-sent once; a second 401 raises
    :class:`~resilient_session.AuthenticationError`. Token endpoint failures raise
    :class:`~resilient_session.TokenEndpointError` (:class:`~resilient_session.TokenEndpointTimeout` on a
    timeout); a refused grant raises :class:`~resilient_session.OAuth2TokenError`.

    :param token_url: The token endpoint (https).
    :param client_id: The client id.
    :param client_secret: The client secret.
    :param scope: Requested scope: a space-separated string or a list.
    :param leeway: Seconds before expiry at which the token is renewed (capped at half its lifetime).
    :param client_auth: ``"basic"`` sends the client credentials as HTTP Basic auth (RFC 6749 §2.3.1's
        preferred way), ``"body"`` as ``client_id``/``client_secret`` form fields.
    :param token_params: Extra form fields for the token request (``audience``, ``resource`` ...).
    :param timeout: Timeout of the token request, seconds or ``(connect, read)``.
    :param verify: TLS verification for the token request, as requests' ``verify=``.
    :param clock: Seconds-returning clock used for expiry (``time.time``); inject one in tests.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: Scope = None,
        *,
        leeway: float = 30.0,
        client_auth: Literal["basic", "body"] = "basic",
        token_params: Mapping[str, str] | None = None,
        timeout: TimeoutArg = (3.05, 10.0),
        verify: bool | str = True,
        clock: Clock = time.time,
    ) -> None:
        if not client_secret:
            raise ConfigurationError("client_secret must be a non-empty string")
        if client_auth not in ("basic", "body"):
            raise ConfigurationError("client_auth must be 'basic' or 'body'")
        self.client_auth = client_auth
        self.token_params = dict(token_params or {})
        super().__init__(
            token_url,
            client_id,
            client_secret,
            scope=scope,
            leeway=leeway,
            timeout=timeout,
            verify=verify,
            clock=clock,
        )

    @classmethod
    def from_env(
        cls, client_id_var: str, client_secret_var: str, *, token_url: str, **kwargs: Any
    ) -> OAuth2ClientCredentials:
        """Read client id and secret from two environment variables; other arguments as the constructor."""
        return cls(token_url, env_secret(client_id_var), env_secret(client_secret_var), **kwargs)

    def _new_session(self) -> Any:
        from oauthlib.oauth2 import BackendApplicationClient
        from requests_oauthlib import OAuth2Session

        return OAuth2Session(client=BackendApplicationClient(client_id=self.client_id, scope=self.scope))

    def _request_token(self, session: Any) -> Mapping[str, Any]:
        token: Mapping[str, Any] = session.fetch_token(
            self.token_url,
            client_secret=self._client_secret,
            include_client_id=self.client_auth == "body",
            timeout=self.timeout,
            verify=self.verify,
            **self.token_params,
        )
        return token

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repr_fields()}, client_auth={self.client_auth!r})"


class OAuth2RefreshToken(_OAuth2Auth):
    """Bearer tokens renewed with the OAuth2 refresh-token grant (RFC 6749 §6).

    Start from a refresh token (``refresh_token=``) or from a token dict saved earlier (``token=``, as
    given to *token_saver*). Access tokens are renewed before expiry and on a 401 exactly as in
    :class:`OAuth2ClientCredentials`. When the server rotates the refresh token, the new one is used from
    then on; *token_saver* receives every new token dict (``access_token``, ``refresh_token``,
    ``expires_at`` on *clock*, ...) so it can be persisted. An exception from *token_saver* propagates
    (the new token is kept in memory). A revoked refresh token raises
    :class:`~resilient_session.OAuth2TokenError` (``error == "invalid_grant"``).

    :param token_url: The token endpoint (https).
    :param client_id: The client id.
    :param client_secret: The client secret; ``None`` for public clients (``client_id`` goes in the body).
    :param refresh_token: The refresh token to start from.
    :param token: A saved token dict to start from (must hold ``refresh_token``).
    :param token_saver: Called with each new token dict.
    :param scope: Scope to request on renewal (default: as originally granted).
    :param leeway: Seconds before expiry at which the token is renewed (capped at half its lifetime).
    :param timeout: Timeout of the token request, seconds or ``(connect, read)``.
    :param verify: TLS verification for the token request, as requests' ``verify=``.
    :param clock: Seconds-returning clock used for expiry (``time.time``); inject one in tests.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        refresh_token: str | None = None,
        token: Mapping[str, Any] | None = None,
        token_saver: TokenSaver | None = None,
        scope: Scope = None,
        leeway: float = 30.0,
        timeout: TimeoutArg = (3.05, 10.0),
        verify: bool | str = True,
        clock: Clock = time.time,
    ) -> None:
        if (refresh_token is None) == (token is None):
            raise ConfigurationError("OAuth2RefreshToken takes exactly one of refresh_token= or token=")
        start = refresh_token if token is None else token.get("refresh_token")
        if not isinstance(start, str) or not start:
            raise ConfigurationError("a non-empty refresh token is required")
        if token_saver is not None and not callable(token_saver):
            raise ConfigurationError("token_saver must be callable")
        self._refresh_token = start
        self.token_saver = token_saver
        super().__init__(
            token_url,
            client_id,
            client_secret or None,
            scope=scope,
            leeway=leeway,
            timeout=timeout,
            verify=verify,
            clock=clock,
        )
        if token is not None and isinstance(token.get("access_token"), str) and token["access_token"]:
            expires_at = token.get("expires_at")
            expires = float(expires_at) if isinstance(expires_at, (int, float)) else None
            refresh_at = None if expires is None else expires - self.leeway
            self._token = _Token(token["access_token"], refresh_at, expires, dict(token))

    @classmethod
    def from_env(
        cls,
        client_id_var: str,
        client_secret_var: str | None = None,
        *,
        refresh_token_var: str,
        token_url: str,
        **kwargs: Any,
    ) -> OAuth2RefreshToken:
        """Read client id, optional secret and the refresh token from environment variables."""
        secret = env_secret(client_secret_var) if client_secret_var is not None else None
        return cls(
            token_url,
            env_secret(client_id_var),
            secret,
            refresh_token=env_secret(refresh_token_var),
            **kwargs,
        )

    @property
    def secret_values(self) -> tuple[str, ...]:
        return (*super().secret_values, self._refresh_token)

    def _request_token(self, session: Any) -> Mapping[str, Any]:
        secret = self._client_secret
        auth = HTTPBasicAuth(self.client_id, secret) if secret else None
        extra = {} if secret else {"client_id": self.client_id}
        token: Mapping[str, Any] = session.refresh_token(
            self.token_url,
            refresh_token=self._refresh_token,
            auth=auth,
            timeout=self.timeout,
            verify=self.verify,
            **extra,
        )
        return token

    def _stored(self, token: _Token) -> None:
        rotated = token.raw.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            self._refresh_token = rotated
        else:
            token = _Token(
                token.access_token,
                token.refresh_at,
                token.expires_at,
                {**token.raw, "refresh_token": self._refresh_token},
            )
            self._token = token
        if self.token_saver is not None:
            self.token_saver(dict(token.raw))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repr_fields()}, refresh_token={REDACTED!r})"
