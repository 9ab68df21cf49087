"""An integration's credentials never reach a second origin: two real servers on 127.0.0.1.

Server A is the integration (its ``base_url``); server B is another origin (another port) that a caller
names with an absolute URL. B records every request it receives, and its log is searched for each
encoding of each secret (raw, percent-encoded, form-encoded, base64 inside Basic, ``user:password``):
none may appear. A's log must show the credential, so each case proves it was in play.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from resilient_session import APIKeyAuth, BasicAuth, BearerAuth, OAuth2ClientCredentials, ResilientSession
from resilient_session.cli.app import main
from tests.integration.rawserver import Conn, RawServer, Received, answer, response
from tests.secret_forms import leaks

pytestmark = pytest.mark.integration

KEY = "k3y+4a/7f=1c%9e:2d@x y"  # every character that changes under some encoding
TOKEN = "tok-3c5e/7a9b+1d="
USER = "svc:integration"
PASSWORD = "pw 6f0b/2d+4e=8a%"
CLIENT_SECRET = "cs-1e3a/5c7f+9b="


def log_text(server: RawServer) -> str:
    """The server's request log as one text: request lines, headers and bodies."""
    with server.lock:
        received = list(server.received)
    return "\n\n".join(
        f"{r.method} {r.path}\n"
        + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        + "\n\n"
        + r.body.decode("latin-1")
        for r in received
    )


def integration_routes(b: RawServer) -> Callable[[Conn, Received], bool]:
    """Server A: ``/token`` issues an OAuth2 token, ``/hop`` redirects to B, anything else answers 200."""

    def run(conn: Conn, received: Received) -> bool:
        if received.path.startswith("/token"):
            body = json.dumps({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})
            conn.send(response(200, body.encode()))
        elif received.path.startswith("/hop"):
            conn.send(response(302, b"", headers={"Location": f"{b.url}/landed"}))
        else:
            conn.send(response(200))
        return True

    return run


@pytest.fixture
def servers() -> Iterator[tuple[RawServer, RawServer]]:
    with RawServer() as a, RawServer() as b:
        a.script(integration_routes(b))
        b.script(answer())
        yield a, b


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the token endpoint is plain http on loopback
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# name: (builds the session from A's URL, [(secret, user for Basic forms)])
Build = Callable[[str], ResilientSession]
CASES: dict[str, tuple[Build, list[tuple[str, str | None]]]] = {
    "api key, X-API-Key header": (
        lambda a: ResilientSession(base_url=a, auth=APIKeyAuth(KEY), retry=0),
        [(KEY, None)],
    ),
    "api key, custom header": (
        lambda a: ResilientSession(base_url=a, auth=APIKeyAuth(KEY, header="X-Vendor-Credential"), retry=0),
        [(KEY, None)],
    ),
    "api key in the query string": (
        lambda a: ResilientSession(base_url=a, auth=APIKeyAuth(KEY, query="api_key"), retry=0),
        [(KEY, None)],
    ),
    "bearer token": (
        lambda a: ResilientSession(base_url=a, auth=BearerAuth(TOKEN), retry=0),
        [(TOKEN, None)],
    ),
    "basic (BasicAuth)": (
        lambda a: ResilientSession(base_url=a, auth=BasicAuth(USER, PASSWORD), retry=0),
        [(PASSWORD, USER)],
    ),
    "basic (a tuple)": (
        lambda a: ResilientSession(base_url=a, auth=(USER, PASSWORD), retry=0),
        [(PASSWORD, USER)],
    ),
    "oauth2 client credentials": (
        lambda a: ResilientSession(
            base_url=a,
            auth=OAuth2ClientCredentials(f"{a}/token", "client-7", CLIENT_SECRET),
            retry=0,
        ),
        [(TOKEN, None), (CLIENT_SECRET, "client-7")],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_an_absolute_url_to_another_origin_gets_no_credential(
    servers: tuple[RawServer, RawServer], name: str
) -> None:
    a, b = servers
    build, secrets = CASES[name]
    with build(a.url) as session:
        # To B: a GET with a query, a form POST, a JSON POST, and a redirect from A to B.
        assert session.get(f"{b.url}/items?page=2").status_code == 200
        assert session.post(f"{b.url}/form", data={"field": "value"}).status_code == 200
        assert session.post(f"{b.url}/json", json={"field": "value"}).status_code == 200
        assert session.get("/hop").status_code == 200
        # To A: the credential is sent (the assertions on B are not vacuous).
        assert session.get("/items").status_code == 200
    on_b = log_text(b)
    assert b.count == 4
    for secret, user in secrets:
        assert leaks(on_b, secret, user) == [], f"{name}: found on the second origin"
    assert "Authorization" not in on_b and "authorization" not in on_b
    assert any(leaks(log_text(a), secret, user) for secret, user in secrets), f"{name}: never sent to A"


def test_user_and_password_in_base_url_stay_on_its_origin(servers: tuple[RawServer, RawServer]) -> None:
    a, b = servers
    host_a = a.url.removeprefix("http://")
    with ResilientSession(base_url=f"http://svc:{quote(PASSWORD, safe='')}@{host_a}", retry=0) as session:
        session.get(f"{b.url}/items")
        session.get("/items")
    assert leaks(log_text(b), PASSWORD, "svc") == []
    assert leaks(log_text(a), PASSWORD, "svc") != []


def test_a_file_integration_keeps_its_key_home_and_allows_the_origins_it_names(
    servers: tuple[RawServer, RawServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = servers
    monkeypatch.setenv("LIVE_KEY", KEY)
    path = tmp_path / "integrations.toml"
    path.write_text(
        f'[integrations.api]\nbase_url = "{a.url}/v1"\nretry = false\n'
        'auth = { type = "api_key", query = "api_key", key_env = "LIVE_KEY" }\n'
        f'[integrations.wide]\nbase_url = "{a.url}/v1"\nretry = false\nallowed_origins = ["{b.url}"]\n'
        'auth = { type = "api_key", key_env = "LIVE_KEY" }\n',
        encoding="utf-8",
    )
    with ResilientSession.from_config(path, "api") as session:
        session.get(f"{b.url}/items")
        session.get("/items")
    assert leaks(log_text(b), KEY) == []
    assert leaks(log_text(a), KEY) != []
    with ResilientSession.from_config(path, "wide") as session:
        session.get(f"{b.url}/listed")
    assert b.received[-1].headers["x-api-key"] == KEY  # an origin the file names gets it


def test_the_cli_call_follows_the_same_rule(
    servers: tuple[RawServer, RawServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = servers
    monkeypatch.setenv("CLI_USER", USER)
    monkeypatch.setenv("CLI_PASSWORD", PASSWORD)
    path = tmp_path / "integrations.toml"
    path.write_text(
        f'[integrations.api]\nbase_url = "{a.url}"\nretry = false\n'
        'auth = { type = "basic", username_env = "CLI_USER", password_env = "CLI_PASSWORD" }\n',
        encoding="utf-8",
    )

    def call(target: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["call", str(path), "api", "GET", target])
        return code, out.getvalue() + err.getvalue()

    code, output = call(f"{b.url}/elsewhere")
    assert code == 0, output
    assert json.loads(output)["status"] == 200
    assert b.count == 1
    assert leaks(log_text(b), PASSWORD, USER) == []
    code, output = call("/home")
    assert code == 0, output
    assert leaks(log_text(a), PASSWORD, USER) != []
    assert leaks(output, PASSWORD, USER) == []


def test_the_debug_line_says_where_credentials_were_not_sent(
    servers: tuple[RawServer, RawServer], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = servers
    session = ResilientSession(base_url=a.url, auth=APIKeyAuth(KEY), integration="live", retry=0)
    with session, caplog.at_level("DEBUG", logger="resilient_session.auth"):
        session.get(f"{b.url}/items?api_key_hint=1")
    lines: list[Any] = [r.getMessage() for r in caplog.records if r.name == "resilient_session.auth"]
    assert lines == [f"credentials of integration 'live' not sent to {b.url}: not one of its allowed origins"]
    assert all(not leaks(line, KEY) for line in lines)
