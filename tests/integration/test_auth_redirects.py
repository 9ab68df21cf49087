"""Credentials never cross origins on a redirect, and never reach a log line: real servers on loopback.

Two origins differ by port (two servers on 127.0.0.1) or by host name (``127.0.0.1`` vs ``localhost`` on
the same port). Each server records every request it gets, so the assertions look at what really
arrived on the wire.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from resilient_session import (
    APIKeyAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    ResilientSession,
    RetryPolicy,
    ServerError,
)
from resilient_session.errors import TokenEndpointError

pytestmark = pytest.mark.integration

KEY = "key-4a7f1c9e2d"
CUSTOM_KEY = "cust-8d2e6b0a4f"
TOKEN = "tok-3c5e7a9b1d"
PASSWORD = "pw-6f0b2d4e8a"
CLIENT_SECRET = "cs-1e3a5c7f9b"
REDIRECTS = [301, 302, 303, 307, 308]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]

    def text(self) -> str:
        return self.path + "\n" + "\n".join(f"{k}: {v}" for k, v in self.headers.items())


class Origin:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) that records requests.

    Routes: ``/redirect/<status>?to=<url>`` answers *status* with ``Location: <url>`` and copies the
    request's other query parameters onto it (servers that preserve query strings are the worst case);
    ``/bare-redirect/<status>?to=<url>`` copies nothing; ``/flaky/<n>?to=<url>`` answers 503 *n* times,
    then redirects like ``/redirect/302``; ``/fail`` always answers 503; ``/token`` issues OAuth2 tokens;
    anything else answers 200.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.issued: list[str] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()
            self.issued.clear()
            self._counts.clear()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _reply(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(handler.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        target = dict(query).get("to", "")
        rest = urlencode([(k, v) for k, v in query if k != "to"])
        step = parts.path.strip("/").split("/")
        if step[0] == "flaky":
            with self._lock:
                count = self._counts[handler.path] = self._counts.get(handler.path, 0) + 1
            if count <= int(step[1]):
                return 503, {}, b"busy"
            step = ["redirect", "302"]
        if step[0] in ("redirect", "bare-redirect"):
            location = target
            if step[0] == "redirect" and rest:
                location += ("&" if "?" in target else "?") + rest
            return int(step[1]), {"Location": location}, b""
        if step[0] == "fail":
            return 503, {}, b"broken"
        if step[0] == "token":
            with self._lock:
                token = f"at-{len(self.issued) + 1:03d}-{self.port}-5d7e9f"
                self.issued.append(token)
            body = json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3600})
            return 200, {"Content-Type": "application/json"}, body.encode()
        return 200, {"Content-Type": "application/json"}, b'{"ok": true}'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with origin._lock:
                    origin.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
                status, headers, body = origin._reply(self)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = handle_one

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean; requests are recorded in origin.seen

        return Handler


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[Origin, Origin]]:
    a, b = Origin(), Origin()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def origin_a(origins: tuple[Origin, Origin]) -> Origin:
    origins[0].reset()
    return origins[0]


@pytest.fixture
def origin_b(origins: tuple[Origin, Origin]) -> Origin:
    origins[1].reset()
    return origins[1]


@pytest.fixture
def insecure_oauth(monkeypatch: pytest.MonkeyPatch) -> None:
    # The token endpoint is a loopback http server; oauthlib refuses http without this.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


# -- the auth set-ups under test --------------------------------------------------------------------


@dataclass
class Setup:
    session: requests.Session
    kwargs: dict[str, Any]
    secrets: Callable[[], list[str]]  # read after the call: OAuth2 tokens exist only then
    present: Callable[[Seen], bool]  # the credential reached this request


def basic_value(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def make_setup(kind: str, a: Origin) -> Setup:
    session = ResilientSession()
    kwargs: dict[str, Any] = {}
    secrets = [KEY]

    def header_is(name: str, value: str) -> Callable[[Seen], bool]:
        return lambda seen: any(k.lower() == name.lower() and v == value for k, v in seen.headers.items())

    if kind == "api-key-header":
        session.auth = APIKeyAuth(KEY)
        present = header_is("X-API-Key", KEY)
    elif kind == "api-key-custom-header":
        session.auth = APIKeyAuth(CUSTOM_KEY, header="X-Vendor-Credential")
        secrets = [CUSTOM_KEY]
        present = header_is("X-Vendor-Credential", CUSTOM_KEY)
    elif kind == "api-key-query":
        kwargs["auth"] = APIKeyAuth(KEY, query="api_key")
        present = lambda seen: f"api_key={KEY}" in seen.path  # noqa: E731
    elif kind == "bearer":
        session.auth = BearerAuth(TOKEN)
        secrets = [TOKEN]
        present = header_is("Authorization", f"Bearer {TOKEN}")
    elif kind == "basic-tuple":
        session.auth = ("alice", PASSWORD)
        secrets = [PASSWORD, basic_value("alice", PASSWORD)]
        present = header_is("Authorization", f"Basic {basic_value('alice', PASSWORD)}")
    elif kind == "session-header":
        session.headers["X-API-Key"] = KEY
        present = header_is("X-API-Key", KEY)
    elif kind == "request-header":
        kwargs["headers"] = {"X-Auth-Token": TOKEN}
        secrets = [TOKEN]
        present = header_is("X-Auth-Token", TOKEN)
    elif kind == "oauth2":
        session.auth = OAuth2ClientCredentials(a.url("/token"), "client-1", CLIENT_SECRET)

        def secrets_now() -> list[str]:
            return [CLIENT_SECRET, *a.issued]

        def oauth_present(seen: Seen) -> bool:
            return bool(a.issued) and seen.headers.get("Authorization") == f"Bearer {a.issued[-1]}"

        return Setup(session, kwargs, secrets_now, oauth_present)
    else:  # pragma: no cover - a typo in the parametrisation
        raise AssertionError(kind)
    return Setup(session, kwargs, lambda: secrets, present)


KINDS = [
    "api-key-header",
    "api-key-custom-header",
    "api-key-query",
    "bearer",
    "basic-tuple",
    "session-header",
    "request-header",
    "oauth2",
]


def api_requests(origin: Origin) -> list[Seen]:
    return [seen for seen in origin.seen if not seen.path.startswith("/token")]


# -- cross-origin: nothing arrives -----------------------------------------------------------------


@pytest.mark.usefixtures("insecure_oauth")
@pytest.mark.parametrize("target", ["other-port", "localhost"])
@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("kind", KINDS)
def test_cross_origin_redirect_carries_no_credential(
    kind: str, status: int, target: str, origin_a: Origin, origin_b: Origin
) -> None:
    second = origin_b if target == "other-port" else origin_a
    host = "127.0.0.1" if target == "other-port" else "localhost"
    setup = make_setup(kind, origin_a)
    landing = second.url("/landing", host=host)
    response = setup.session.get(origin_a.url(f"/redirect/{status}?to={landing}"), **setup.kwargs)

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [status]
    first, arrived = api_requests(origin_a)[0], api_requests(second)[-1]
    assert arrived.path.startswith("/landing")
    assert setup.present(first), "the credential never reached the first origin: the test proves nothing"
    assert not setup.present(arrived)
    for secret in setup.secrets():
        assert secret not in arrived.text()


@pytest.mark.usefixtures("insecure_oauth")
@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("kind", KINDS)
def test_same_origin_redirect_keeps_the_credential(kind: str, status: int, origin_a: Origin) -> None:
    setup = make_setup(kind, origin_a)
    landing = origin_a.url("/landing?page=2")
    response = setup.session.get(origin_a.url(f"/bare-redirect/{status}?to={landing}"), **setup.kwargs)

    assert response.status_code == 200
    arrived = api_requests(origin_a)[-1]
    assert arrived.path.startswith("/landing?page=2")
    assert setup.present(arrived)


@pytest.mark.usefixtures("insecure_oauth")
@pytest.mark.parametrize("target", ["other-port", "localhost"])
@pytest.mark.parametrize("status", REDIRECTS)
def test_the_token_request_is_never_redirected_to_another_origin(
    status: int, target: str, origin_a: Origin, origin_b: Origin
) -> None:
    # With client_auth="body" a followed 307/308 would post the client secret to the second origin.
    second = origin_b if target == "other-port" else origin_a
    host = "127.0.0.1" if target == "other-port" else "localhost"
    token_url = origin_a.url(f"/bare-redirect/{status}?to={second.url('/token', host=host)}")
    auth = OAuth2ClientCredentials(token_url, "client-1", CLIENT_SECRET, client_auth="body")
    with pytest.raises(TokenEndpointError, match="another origin") as info:
        ResilientSession(auth=auth).get(origin_a.url("/api"))
    assert second.issued == []
    assert not [seen for seen in second.seen if seen.path.startswith("/token")]
    assert not api_requests(origin_a)[1:]  # only the redirecting token request; the API was not called
    assert CLIENT_SECRET not in f"{info.value!s} {info.value!r}"


@pytest.mark.parametrize("status", [307, 308])
def test_a_redirected_post_body_goes_on_without_credentials(
    status: int, origin_a: Origin, origin_b: Origin
) -> None:
    session = ResilientSession(auth=APIKeyAuth(KEY))
    landing = origin_b.url("/landing")
    response = session.post(origin_a.url(f"/redirect/{status}?to={landing}"), json={"n": 1})
    assert response.status_code == 200
    arrived = origin_b.seen[-1]
    assert arrived.method == "POST" and arrived.headers.get("Content-Length") == "8"
    assert KEY not in arrived.text()


def test_a_chain_back_to_the_first_origin_stays_clean(origin_a: Origin, origin_b: Origin) -> None:
    session = ResilientSession(auth=APIKeyAuth(KEY, header="X-Vendor-Credential"))
    back = origin_a.url("/landing")
    via_b = origin_b.url(f"/bare-redirect/302?to={back}")
    session.get(origin_a.url(f"/bare-redirect/302?to={via_b}"))
    assert KEY not in origin_b.seen[-1].text()
    # Once the credential left on a cross-origin hop it is not re-attached: auth is not re-applied.
    assert KEY not in origin_a.seen[-1].text()


def test_plain_requests_leaks_custom_headers_which_is_why_this_exists(
    origin_a: Origin, origin_b: Origin
) -> None:
    session = requests.Session()
    landing = origin_b.url("/landing")
    session.get(origin_a.url(f"/redirect/302?to={landing}"), auth=APIKeyAuth(KEY), timeout=5)
    assert origin_b.seen[-1].headers.get("X-API-Key") == KEY


# -- logs ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("library_logs_redacted")
@pytest.mark.usefixtures("insecure_oauth")
@pytest.mark.parametrize("kind", ["api-key-query", "api-key-header", "bearer", "basic-tuple", "oauth2"])
def test_a_failing_retried_redirected_call_logs_no_secret(
    kind: str, origin_a: Origin, origin_b: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: urllib3, requests-oauthlib, ours, everything
    setup = make_setup(kind, origin_a)
    for prefix in ("http://", "https://"):
        setup.session.get_adapter(prefix).max_retries = RetryPolicy(total=2, backoff_factor=0)  # type: ignore[attr-defined]
    setup.session.raise_for_status = True  # type: ignore[attr-defined]
    failing = origin_b.url("/fail")
    with pytest.raises(ServerError) as info:
        # A answers 503 twice (retried), then redirects to B, which answers 503 until retries run out.
        setup.session.get(origin_a.url(f"/flaky/2?to={failing}"), **setup.kwargs)
    logging.getLogger("resilient_session").error("call failed", exc_info=info.value)

    assert len(api_requests(origin_a)) == 3 and len(api_requests(origin_b)) == 3
    assert "Retry" in caplog.text and "/flaky/2" in caplog.text  # urllib3's retry lines were captured
    everything = "\n".join([caplog.text, str(info.value), repr(info.value)])
    for secret in setup.secrets():
        assert secret not in everything
    assert setup.present(api_requests(origin_a)[0])
