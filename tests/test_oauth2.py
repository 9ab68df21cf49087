"""OAuth2 client-credentials and refresh-token auth against a mocked token endpoint (``responses``)."""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from resilient_session import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    ResilientSession,
)
from resilient_session.errors import OAuth2TokenError, TokenEndpointError, TokenEndpointTimeout

TOKEN_URL = "https://auth.example.test/oauth/token"
ITEMS = "https://api.example.test/items"
CLIENT_ID = "billing-client"
CLIENT_SECRET = "cs-5e2b8d4f6a0c"


class Clock:
    """A hand-driven clock: tests move ``now``; nothing sleeps."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TokenEndpoint:
    """Issues numbered access tokens and records every token request."""

    def __init__(
        self,
        mock: responses.RequestsMock,
        expires_in: int | None = 3600,
        refresh_tokens: Iterator[str] | None = None,
        **extra: Any,
    ) -> None:
        self.expires_in = expires_in
        self.refresh_tokens = refresh_tokens
        self.extra = extra
        self.issued: list[str] = []
        self.requests: list[requests.PreparedRequest] = []
        self.before_reply: Any = None
        self._lock = threading.Lock()
        mock.add_callback("POST", TOKEN_URL, callback=self._reply)

    def _reply(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if self.before_reply is not None:
            self.before_reply()
        with self._lock:
            self.requests.append(request)
            token = f"at-{len(self.issued) + 1:04d}-9f8e7d6c"
            self.issued.append(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", **self.extra}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if self.refresh_tokens is not None:
            body["refresh_token"] = next(self.refresh_tokens)
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def form(self, index: int = -1) -> dict[str, list[str]]:
        body = self.requests[index].body
        text = body.decode() if isinstance(body, bytes) else str(body)
        return parse_qs(text)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as m:
        yield m


@pytest.fixture
def clock() -> Clock:
    return Clock()


def api_ok(mock: responses.RequestsMock) -> None:
    mock.get(ITEMS, json={"items": []})


def client(clock: Clock, **kwargs: Any) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(TOKEN_URL, CLIENT_ID, CLIENT_SECRET, clock=clock, **kwargs)


def bearer(call: Any) -> str:
    return str(call.request.headers.get("Authorization", ""))


# -- client credentials: fetching and caching --------------------------------------------------------


def test_token_is_fetched_once_and_cached(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock)
    api_ok(mock)
    session = ResilientSession(auth=client(clock, scope=["read", "write"]))
    session.get(ITEMS)
    session.get(ITEMS)
    assert len(tokens.issued) == 1
    assert [bearer(c) for c in mock.calls if c.request.url == ITEMS] == [f"Bearer {tokens.issued[0]}"] * 2
    form = tokens.form()
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == ["read write"]
    assert "client_secret" not in form
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert tokens.requests[0].headers["Authorization"] == f"Basic {basic}"


def test_client_credentials_in_the_body(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock)
    api_ok(mock)
    auth = client(clock, client_auth="body", token_params={"audience": "https://api.example.test"})
    requests.get(ITEMS, auth=auth)
    form = tokens.form()
    assert form["client_id"] == [CLIENT_ID] and form["client_secret"] == [CLIENT_SECRET]
    assert form["audience"] == ["https://api.example.test"]
    assert "Authorization" not in tokens.requests[0].headers


def test_token_is_renewed_leeway_seconds_before_expiry(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock, expires_in=100)
    auth = client(clock, leeway=10)
    start = clock.now
    assert auth.get_token() == tokens.issued[0]
    clock.now = start + 89.9
    assert auth.get_token() == tokens.issued[0]
    clock.now = start + 90
    assert auth.get_token() == tokens.issued[1]
    assert len(tokens.issued) == 2


def test_leeway_is_capped_at_half_the_token_lifetime(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock, expires_in=20)
    auth = client(clock, leeway=30)
    start = clock.now
    auth.get_token()
    clock.now = start + 9.9
    auth.get_token()
    assert len(tokens.issued) == 1
    clock.now = start + 10
    auth.get_token()
    assert len(tokens.issued) == 2


def test_expired_token_is_replaced(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock, expires_in=60)
    api_ok(mock)
    session = ResilientSession(auth=client(clock, leeway=0))
    session.get(ITEMS)
    clock.now += 61
    session.get(ITEMS)
    assert bearer(mock.calls[-1]) == f"Bearer {tokens.issued[1]}"


def test_token_without_expiry_is_kept_until_rejected(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock, expires_in=None)
    auth = client(clock)
    auth.get_token()
    clock.now += 10 * 365 * 86400
    auth.get_token()
    assert len(tokens.issued) == 1


def test_invalidate_forces_a_new_token(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock)
    auth = client(clock)
    first = auth.get_token()
    auth.invalidate()
    assert auth.get_token() != first
    assert len(tokens.issued) == 2


def test_a_narrowed_scope_is_accepted(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock, scope="read")
    assert client(clock, scope="read write").get_token() == tokens.issued[0]


# -- 401 handling ----------------------------------------------------------------------------------


def rejecting(tokens: TokenEndpoint, rejected: set[str]) -> Any:
    def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in rejected or not token:
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, "{}"
        return 200, {}, '{"ok": true}'

    return reply


@pytest.mark.parametrize("session_class", [ResilientSession, requests.Session])
def test_401_renews_the_token_and_resends_once(
    mock: responses.RequestsMock, clock: Clock, session_class: type[requests.Session]
) -> None:
    tokens = TokenEndpoint(mock)
    revoked: set[str] = set()
    mock.add_callback("GET", ITEMS, callback=rejecting(tokens, revoked))
    session = session_class()
    session.auth = client(clock)
    session.get(ITEMS)
    revoked.add(tokens.issued[0])  # the server revokes the token before it expires
    response = session.get(ITEMS)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert len(tokens.issued) == 2
    assert bearer(mock.calls[-1]) == f"Bearer {tokens.issued[1]}"
    assert response.request.headers["Authorization"] == f"Bearer {tokens.issued[1]}"


def test_second_401_raises_authentication_error(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock)
    mock.add(responses.GET, ITEMS, status=401, json={"error": "nope"})
    with pytest.raises(AuthenticationError) as info:
        ResilientSession(auth=client(clock)).get(ITEMS)
    error = info.value
    assert error.status == 401 and error.response is not None and error.response.status_code == 401
    assert isinstance(error, requests.HTTPError)
    assert len(tokens.issued) == 2
    assert len([c for c in mock.calls if c.request.url == ITEMS]) == 2
    assert not any(secret in str(error) for secret in [CLIENT_SECRET, *tokens.issued])


def test_401_after_another_thread_renewed_reuses_that_token(
    mock: responses.RequestsMock, clock: Clock
) -> None:
    tokens = TokenEndpoint(mock)
    auth = client(clock)
    revoked: set[str] = set()
    reply = rejecting(tokens, revoked)

    def api(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if not revoked:
            revoked.add(tokens.issued[0])
            auth.invalidate()  # "another thread" renews while this request is in flight
            auth.get_token()
        return reply(request)

    mock.add_callback("GET", ITEMS, callback=api)
    response = requests.get(ITEMS, auth=auth)
    assert response.status_code == 200
    assert len(tokens.issued) == 2  # the 401 did not cause a third fetch


def test_401_resends_a_file_body_from_its_start(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock)
    bodies: list[bytes] = []

    def upload(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body: Any = request.body
        bodies.append(body.read() if hasattr(body, "read") else body)
        first = request.headers["Authorization"] == f"Bearer {tokens.issued[0]}"
        return (401, {}, "") if first else (201, {}, "")

    mock.add_callback("POST", ITEMS, callback=upload)
    response = requests.post(ITEMS, data=io.BytesIO(b"payload"), auth=client(clock))
    assert response.status_code == 201
    assert bodies == [b"payload", b"payload"]


def test_401_with_a_consumed_generator_body_is_returned_after_renewal(
    mock: responses.RequestsMock, clock: Clock
) -> None:
    tokens = TokenEndpoint(mock)
    mock.add(responses.POST, ITEMS, status=401)
    auth = client(clock)
    response = requests.post(ITEMS, data=(chunk for chunk in [b"a", b"b"]), auth=auth)
    assert response.status_code == 401
    assert len(tokens.issued) == 2 and auth.get_token() == tokens.issued[1]
    assert len([c for c in mock.calls if c.request.url == ITEMS]) == 1


# -- the token endpoint failing --------------------------------------------------------------------


def assert_clean(error: BaseException, *secrets: str) -> None:
    text = f"{error!s} {error!r}"
    for secret in (CLIENT_SECRET, *secrets):
        assert secret not in text


@pytest.mark.parametrize(
    ("failure", "expected", "requests_class"),
    [
        (requests.ConnectionError("connection refused"), TokenEndpointError, requests.ConnectionError),
        (requests.ConnectTimeout("connect timed out"), TokenEndpointTimeout, requests.Timeout),
        (requests.ReadTimeout("read timed out"), TokenEndpointTimeout, requests.Timeout),
    ],
)
def test_token_endpoint_down_raises_a_typed_error(
    mock: responses.RequestsMock,
    clock: Clock,
    failure: Exception,
    expected: type[Exception],
    requests_class: type[Exception],
) -> None:
    mock.post(TOKEN_URL, body=failure)
    api_ok(mock)
    with pytest.raises(expected) as info:
        ResilientSession(auth=client(clock)).get(ITEMS)
    assert isinstance(info.value, APIError) and isinstance(info.value, requests_class)
    assert info.value.url == TOKEN_URL
    assert_clean(info.value)
    assert len(mock.calls) == 1  # the API was never called


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_token_endpoint_unwell_statuses(mock: responses.RequestsMock, clock: Clock, status: int) -> None:
    mock.post(TOKEN_URL, status=status, body="<html>down</html>")
    with pytest.raises(TokenEndpointError) as info:
        client(clock).get_token()
    assert info.value.status == status
    assert isinstance(info.value, requests.ConnectionError)
    assert_clean(info.value)


def test_refused_client_credentials_raise_oauth2_token_error(
    mock: responses.RequestsMock, clock: Clock
) -> None:
    mock.post(
        TOKEN_URL,
        status=401,
        json={"error": "invalid_client", "error_description": f"unknown client secret {CLIENT_SECRET}"},
    )
    with pytest.raises(OAuth2TokenError) as info:
        client(clock).get_token()
    error = info.value
    assert error.error == "invalid_client" and error.status == 401
    assert isinstance(error, AuthenticationError) and isinstance(error, requests.HTTPError)
    assert "invalid_client" in str(error)
    assert_clean(error)


def test_an_answer_without_a_token_is_a_token_endpoint_error(
    mock: responses.RequestsMock, clock: Clock
) -> None:
    mock.post(TOKEN_URL, status=200, body="<html>maintenance</html>")
    with pytest.raises(TokenEndpointError, match="without an access token"):
        client(clock).get_token()


def test_an_access_token_that_cannot_go_in_a_header_is_refused(
    mock: responses.RequestsMock, clock: Clock
) -> None:
    mock.post(TOKEN_URL, json={"access_token": "at-1234\r\nX-Injected: 1", "token_type": "Bearer"})
    with pytest.raises(TokenEndpointError, match="control characters") as info:
        client(clock).get_token()
    assert_clean(info.value, "at-1234")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("client_auth", ["basic", "body"])
def test_the_token_request_never_follows_a_redirect_to_another_origin(
    mock: responses.RequestsMock, clock: Clock, status: int, client_auth: Any
) -> None:
    # A 307/308 would re-send the form body, client secret included, to the other origin.
    elsewhere = "https://elsewhere.example.test/oauth/token"
    mock.post(TOKEN_URL, status=status, headers={"Location": elsewhere})
    taken = mock.post(elsewhere, json={"access_token": "at-stolen-1", "token_type": "Bearer"})
    with pytest.raises(TokenEndpointError, match="another origin") as info:
        client(clock, client_auth=client_auth).get_token()
    assert taken.call_count == 0
    assert info.value.status == status and info.value.url == TOKEN_URL
    assert_clean(info.value)


def test_a_refresh_grant_never_follows_a_redirect_to_another_origin(
    mock: responses.RequestsMock, clock: Clock
) -> None:
    elsewhere = "https://elsewhere.example.test/oauth/token"
    mock.post(TOKEN_URL, status=308, headers={"Location": elsewhere})
    taken = mock.post(elsewhere, json={"access_token": "at-stolen-1", "token_type": "Bearer"})
    auth = OAuth2RefreshToken(TOKEN_URL, CLIENT_ID, None, refresh_token="rt-0a1b2c3d4e", clock=clock)
    with pytest.raises(TokenEndpointError, match="another origin") as info:
        auth.get_token()
    assert taken.call_count == 0
    assert_clean(info.value, "rt-0a1b2c3d4e")


def test_the_token_request_follows_a_same_origin_redirect(mock: responses.RequestsMock, clock: Clock) -> None:
    moved = "https://auth.example.test/v2/oauth/token"
    mock.post(TOKEN_URL, status=308, headers={"Location": "/v2/oauth/token"})
    mock.post(moved, json={"access_token": "at-moved-1", "token_type": "Bearer"})
    assert client(clock).get_token() == "at-moved-1"


def test_failed_renewal_keeps_using_a_still_valid_token(
    mock: responses.RequestsMock, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = TokenEndpoint(mock, expires_in=100)
    auth = client(clock, leeway=30)
    start = clock.now
    first = auth.get_token()
    mock.replace(responses.POST, TOKEN_URL, status=503)
    clock.now = start + 80
    with caplog.at_level(logging.WARNING, logger="resilient_session.oauth2"):
        assert auth.get_token() == first
    assert "renewal failed" in caplog.text
    clock.now = start + 100
    with pytest.raises(TokenEndpointError):
        auth.get_token()
    assert len(tokens.issued) == 1


@pytest.mark.usefixtures("library_logs_redacted")
def test_token_endpoint_traffic_leaves_no_secret_in_debug_logs(
    mock: responses.RequestsMock, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = TokenEndpoint(mock)
    mock.add(responses.GET, ITEMS, status=401)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError):
        ResilientSession(auth=client(clock, client_auth="body")).get(ITEMS)
    assert "requesting an OAuth2 token" in caplog.text  # the log was really captured
    assert "Request body was" in caplog.text  # including requests-oauthlib's own body dump
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for secret in [CLIENT_SECRET, basic, *tokens.issued]:
        assert secret not in caplog.text


# -- threads -----------------------------------------------------------------------------------------


class GatedAuth(OAuth2ClientCredentials):
    """Holds the token endpoint's answer until every thread of a phase has asked for a token."""

    def __init__(self, threads: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads = threads
        self.arrived: set[int] = set()
        self.all_arrived = threading.Event()

    def next_phase(self) -> None:
        self.arrived.clear()
        self.all_arrived.clear()

    def get_token(self) -> str:
        self.arrived.add(threading.get_ident())
        if len(self.arrived) >= self.threads:
            self.all_arrived.set()
        return super().get_token()


def test_sixteen_threads_cause_one_token_fetch_per_expiry(mock: responses.RequestsMock, clock: Clock) -> None:
    threads, calls = 16, 50
    tokens = TokenEndpoint(mock, expires_in=600)
    api_ok(mock)
    auth = GatedAuth(threads, TOKEN_URL, CLIENT_ID, CLIENT_SECRET, leeway=60, clock=clock)
    # The fetching thread holds its answer until all 16 threads are inside get_token(), so every one of
    # them has seen a missing or expiring token: only single-flight keeps the count at one.
    tokens.before_reply = lambda: auth.all_arrived.wait(timeout=10)
    session = ResilientSession(auth=auth)
    start = clock.now
    seen: list[str] = []
    failures: list[BaseException] = []

    def worker(barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            for _ in range(calls):
                seen.append(session.get(ITEMS).request.headers["Authorization"])
        except BaseException as exc:
            failures.append(exc)

    # No token yet; then inside the leeway (renewal due at +540 s); then past the second token's expiry.
    for phase, now in enumerate([start, start + 545, start + 545 + 700], start=1):
        clock.now = now
        auth.next_phase()
        barrier = threading.Barrier(threads)
        pool = [threading.Thread(target=worker, args=(barrier,)) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(timeout=30)
        assert not failures
        assert len(tokens.issued) == phase
        assert seen[-threads * calls :] == [f"Bearer {tokens.issued[-1]}"] * (threads * calls)


# -- configuration -----------------------------------------------------------------------------------


def test_repr_hides_the_client_secret(clock: Clock) -> None:
    text = repr(client(clock, scope="read"))
    assert CLIENT_SECRET not in text
    assert "client_secret='***'" in text and CLIENT_ID in text


def test_from_env(monkeypatch: pytest.MonkeyPatch, mock: responses.RequestsMock) -> None:
    monkeypatch.setenv("BILLING_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("BILLING_CLIENT_SECRET", CLIENT_SECRET)
    tokens = TokenEndpoint(mock)
    auth = OAuth2ClientCredentials.from_env("BILLING_CLIENT_ID", "BILLING_CLIENT_SECRET", token_url=TOKEN_URL)
    assert auth.get_token() == tokens.issued[0]


def test_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_CLIENT_ID", CLIENT_ID)
    monkeypatch.delenv("BILLING_CLIENT_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="BILLING_CLIENT_SECRET"):
        OAuth2ClientCredentials.from_env("BILLING_CLIENT_ID", "BILLING_CLIENT_SECRET", token_url=TOKEN_URL)


def test_plain_http_token_url_is_refused_unless_explicitly_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    with pytest.raises(ConfigurationError, match="https"):
        OAuth2ClientCredentials("http://auth.example.test/token", CLIENT_ID, CLIENT_SECRET)
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    assert OAuth2ClientCredentials("http://auth.example.test/token", CLIENT_ID, CLIENT_SECRET)


@pytest.mark.parametrize(
    "kwargs", [{"client_secret": ""}, {"client_id": ""}, {"leeway": -1}, {"client_auth": "header"}]
)
def test_bad_configuration_is_rejected(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "token_url": TOKEN_URL,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    arguments.update(kwargs)
    with pytest.raises(ConfigurationError):
        OAuth2ClientCredentials(**arguments)


def test_package_imports_without_the_oauth_extra() -> None:
    code = (
        "import sys; sys.modules['requests_oauthlib'] = None; sys.modules['oauthlib'] = None\n"
        "import resilient_session as rs\n"
        "try:\n"
        "    rs.OAuth2ClientCredentials('https://a.test/t', 'id', 'secret')\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "resilient-session[oauth]" in result.stdout


# -- refresh-token grant -----------------------------------------------------------------------------


def refresh_client(clock: Clock, **kwargs: Any) -> OAuth2RefreshToken:
    kwargs.setdefault("refresh_token", "rt-0001-abcdef")
    return OAuth2RefreshToken(TOKEN_URL, CLIENT_ID, CLIENT_SECRET, clock=clock, **kwargs)


def test_refresh_grant_saves_and_uses_rotated_refresh_tokens(
    mock: responses.RequestsMock, clock: Clock
) -> None:
    tokens = TokenEndpoint(mock, expires_in=300, refresh_tokens=iter(["rt-0002-abcdef", "rt-0003-abcdef"]))
    saved: list[dict[str, Any]] = []
    auth = refresh_client(clock, token_saver=saved.append, leeway=0)
    start = clock.now
    assert auth.get_token() == tokens.issued[0]
    clock.now = start + 301
    assert auth.get_token() == tokens.issued[1]
    assert [tokens.form(i)["refresh_token"] for i in range(2)] == [["rt-0001-abcdef"], ["rt-0002-abcdef"]]
    assert all(tokens.form(i)["grant_type"] == ["refresh_token"] for i in range(2))
    assert [s["refresh_token"] for s in saved] == ["rt-0002-abcdef", "rt-0003-abcdef"]
    assert saved[0]["access_token"] == tokens.issued[0] and saved[0]["expires_at"] == start + 300
    assert tokens.requests[0].headers["Authorization"].startswith("Basic ")


def test_refresh_token_is_kept_when_not_rotated(mock: responses.RequestsMock, clock: Clock) -> None:
    TokenEndpoint(mock)
    saved: list[dict[str, Any]] = []
    refresh_client(clock, token_saver=saved.append).get_token()
    assert saved[0]["refresh_token"] == "rt-0001-abcdef"


def test_refresh_grant_starts_from_a_saved_token(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock)
    saved = {
        "access_token": "at-saved-123456",
        "refresh_token": "rt-0001-abcdef",
        "expires_at": clock.now + 120,
    }
    auth = OAuth2RefreshToken(TOKEN_URL, CLIENT_ID, CLIENT_SECRET, token=saved, leeway=30, clock=clock)
    assert auth.get_token() == "at-saved-123456"
    clock.now += 90
    assert auth.get_token() == tokens.issued[0]


def test_public_client_sends_its_id_in_the_body(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock)
    OAuth2RefreshToken(TOKEN_URL, CLIENT_ID, refresh_token="rt-0001-abcdef", clock=clock).get_token()
    assert tokens.form()["client_id"] == [CLIENT_ID]
    assert "Authorization" not in tokens.requests[0].headers


def test_revoked_refresh_token_raises_oauth2_token_error(mock: responses.RequestsMock, clock: Clock) -> None:
    mock.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    with pytest.raises(OAuth2TokenError) as info:
        refresh_client(clock).get_token()
    assert info.value.error == "invalid_grant" and info.value.status == 400
    assert_clean(info.value, "rt-0001-abcdef")


def test_a_failing_token_saver_is_not_silent(mock: responses.RequestsMock, clock: Clock) -> None:
    tokens = TokenEndpoint(mock)

    def broken_saver(token: dict[str, Any]) -> None:
        raise OSError("disk full")

    auth = refresh_client(clock, token_saver=broken_saver)
    with pytest.raises(OSError, match="disk full"):
        auth.get_token()
    assert auth.get_token() == tokens.issued[0]  # the new token was kept in memory
    assert len(tokens.issued) == 1


def test_refresh_token_from_env_and_repr(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    monkeypatch.setenv("CRM_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("CRM_REFRESH_TOKEN", "rt-env-123456")
    auth = OAuth2RefreshToken.from_env(
        "CRM_CLIENT_ID", refresh_token_var="CRM_REFRESH_TOKEN", token_url=TOKEN_URL
    )
    assert "rt-env-123456" not in repr(auth) and "refresh_token='***'" in repr(auth)
    assert "rt-env-123456" in auth.secret_values
    with pytest.raises(ConfigurationError, match="exactly one"):
        OAuth2RefreshToken(TOKEN_URL, CLIENT_ID)


def test_a_session_with_oauth2_auth_pickles_without_its_token(mock: responses.RequestsMock) -> None:
    tokens = TokenEndpoint(mock)
    api_ok(mock)
    session = ResilientSession(auth=OAuth2ClientCredentials(TOKEN_URL, CLIENT_ID, CLIENT_SECRET))
    session.get(ITEMS)
    copy = pickle.loads(pickle.dumps(session))
    assert CLIENT_SECRET not in repr(copy.auth)
    copy.get(ITEMS)
    assert len(tokens.issued) == 2  # the copy fetched its own token
    assert bearer(mock.calls[-1]) == f"Bearer {tokens.issued[1]}"
