"""httpx auth flows for the session's credential objects: the same object, the same secrets, one token.

:class:`HTTPXAuth` wraps any ``requests`` auth (:class:`~resilient_session.APIKeyAuth`,
:class:`~resilient_session.BearerAuth`, :class:`~resilient_session.BasicAuth`, the OAuth2 grants, or a
legacy ``AuthBase``) as an ``httpx.Auth``: it applies the object to a ``requests`` view of the httpx
request and copies back the headers and query it set. The credential source is shared, not copied: a
requests session and an httpx client given the same OAuth2 object share one cached token and renew it
once between them.

OAuth2 in async code: the token endpoint is called in a worker thread (the grant's requests-oauthlib
client is blocking), by one task at a time: while one task renews, the others wait for its token
(single flight across tasks, and across threads through the grant's own lock). A cached, valid token
costs no thread. A 401 to our bearer token renews it once and re-sends, as the session does; a second
401 raises :class:`~resilient_session.httpx.HTTPXAuthenticationError`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import requests
from requests.structures import CaseInsensitiveDict

from .._call import current_call
from ..auth.keys import CredentialAuth
from ..auth.oauth2 import _OAuth2Auth
from ..errors import APIError, DeadlineExceededError, TokenEndpointError, TokenEndpointTimeout
from . import errors as hx

__all__ = ["HTTPXAuth", "as_httpx_auth"]


class HTTPXAuth(httpx.Auth):
    """An ``httpx.Auth`` that applies a ``requests`` auth object (see the module's docstring).

    :param auth: The requests auth object; kept as :attr:`auth`, never copied.
    """

    def __init__(self, auth: Any) -> None:
        if not callable(auth):
            raise TypeError(f"auth must be a requests auth object, not {type(auth).__name__}")
        self.auth = auth
        self._renewing = anyio.Lock() if isinstance(auth, _OAuth2Auth) else None

    def __repr__(self) -> str:
        return f"HTTPXAuth({self.auth!r})"

    # -- sync ----------------------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        oauth = self.auth if isinstance(self.auth, _OAuth2Auth) else None
        if oauth is None:
            self._apply(request)
            yield request
            return
        sent = _translated(request, oauth.get_token)
        _set_bearer(request, sent)
        response = yield request
        if not _rejected(response):
            return
        renewed = _translated(request, lambda: oauth._renew_rejected(sent))
        response.read()
        retry = _copy(request, renewed)
        response = yield retry
        if response.status_code == 401:
            raise _unauthorized(retry, response)

    # -- async ---------------------------------------------------------------------------------------

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        oauth = self.auth if isinstance(self.auth, _OAuth2Auth) else None
        if oauth is None:
            self._apply(request)
            yield request
            return
        sent = await self._token(request, oauth, None)
        _set_bearer(request, sent)
        response = yield request
        if not _rejected(response):
            return
        renewed = await self._token(request, oauth, sent)
        await response.aread()
        retry = _copy(request, renewed)
        response = yield retry
        if response.status_code == 401:
            raise _unauthorized(retry, response)

    async def _token(self, request: httpx.Request, oauth: _OAuth2Auth, rejected: str | None) -> str:
        token = oauth._token
        if rejected is None and token is not None and not oauth._due(token):
            return token.access_token  # cached and valid: no thread, no lock
        assert self._renewing is not None
        async with self._renewing:  # one task renews; the others then find its token cached
            token = oauth._token
            if rejected is None and token is not None and not oauth._due(token):
                return token.access_token
            if rejected is not None and token is not None and token.access_token != rejected:
                return token.access_token
            fetch = oauth.get_token if rejected is None else (lambda: oauth._renew_rejected(rejected))
            # The worker thread runs in a copy of this context: the token call keeps the call's deadline.
            return await anyio.to_thread.run_sync(_translated, request, fetch, abandon_on_cancel=True)

    # -- shared ------------------------------------------------------------------------------------

    def _apply(self, request: httpx.Request) -> None:
        """Apply the requests auth to a requests view of *request*; copy what it set back."""
        view = requests.PreparedRequest()
        view.method = request.method
        view.url = str(request.url)
        view.headers = CaseInsensitiveDict(request.headers.items())
        view.body = request.content if isinstance(request.stream, httpx.ByteStream) else None
        before = dict(view.headers)
        applied = self.auth(view)
        for name, value in applied.headers.items():
            if before.get(name) != value:
                request.headers[name] = value
        if applied.url != view.url or str(request.url) != applied.url:
            request.url = httpx.URL(applied.url)
        _remember_credentials(self.auth, applied)


def as_httpx_auth(auth: Any) -> Any:
    """*auth* as httpx takes it: an ``httpx.Auth``, a ``(user, password)`` tuple or ``None`` unchanged,
    a requests auth object wrapped in :class:`HTTPXAuth`."""
    if auth is None or isinstance(auth, httpx.Auth | tuple):
        return auth
    return HTTPXAuth(auth)


def _remember_credentials(auth: Any, applied: requests.PreparedRequest) -> None:
    """Tell the call which headers carry credentials, so a redirect to another origin drops them."""
    call = current_call()
    if call is None:
        return
    names = set(getattr(auth, "header_names", ()) or ())
    if not isinstance(auth, CredentialAuth):
        names.add("Authorization")
    call.extras.setdefault("credential_headers", set()).update(n.lower() for n in names)
    keys = set(getattr(auth, "query_keys", ()) or ())
    call.extras.setdefault("credential_query", set()).update(keys)


def _set_bearer(request: httpx.Request, token: str) -> None:
    request.headers["Authorization"] = f"Bearer {token}"
    call = current_call()
    if call is not None:
        call.extras.setdefault("credential_headers", set()).add("authorization")


def _rejected(response: httpx.Response) -> bool:
    sent = response.request.headers.get("Authorization", "")
    return response.status_code == 401 and sent.startswith("Bearer ")


def _copy(request: httpx.Request, token: str) -> httpx.Request:
    headers = httpx.Headers(request.headers)
    headers["Authorization"] = f"Bearer {token}"
    return httpx.Request(
        request.method, request.url, headers=headers, stream=request.stream, extensions=request.extensions
    )


def _unauthorized(request: httpx.Request, response: httpx.Response) -> hx.HTTPXAuthenticationError:
    return hx.HTTPXAuthenticationError(
        "401 Unauthorized again after renewing the OAuth2 token", **hx.context(request, response=response)
    )


def _translated(request: httpx.Request, fetch: Any) -> str:
    """``fetch()`` (a token), its token endpoint failures raised as httpx's too."""
    failure: BaseException | None = None
    try:
        return str(fetch())
    except TokenEndpointTimeout as exc:
        failure = _twin(hx.HTTPXTokenEndpointTimeout, exc, request)
    except TokenEndpointError as exc:
        failure = _twin(hx.HTTPXTokenEndpointError, exc, request)
    except DeadlineExceededError as exc:  # the call's deadline, reached inside the token request
        failure = _twin(hx.HTTPXDeadlineExceeded, exc, request)
    raise failure


def _twin(cls: type[APIError], exc: APIError, request: httpx.Request) -> APIError:
    error = cls(
        str(exc.args[0]) if exc.args else "token endpoint failed",
        request=request,
        method=exc.method,
        url=exc.url,
        attempts=exc.attempts,
        elapsed=exc.elapsed,
        status=exc.status,
    )
    return error
