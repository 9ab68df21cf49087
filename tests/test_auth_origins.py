"""Credentials bound to their integration: sent to its origins only (unit tests, ``responses``).

Real servers on loopback check the same promise byte by byte in
``tests/integration/test_credential_origins_live.py``.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from requests.auth import HTTPBasicAuth

from resilient_session import (
    APIKeyAuth,
    BasicAuth,
    BearerAuth,
    InvalidConfigError,
    OAuth2ClientCredentials,
    ResilientSession,
)
from resilient_session.auth.origins import origin_of, parse_origins
from resilient_session.config import load_config
from tests.secret_forms import leaks

KEY = "k3y-9f2/a+b=c%d e"  # characters that change under every encoding
TOKEN = "tok-51c7e0a2b4"
USER = "svc-user"
PASSWORD = "pw-8b1d3f5a7c"
CLIENT_SECRET = "cs-2a4c6e8f0b"

API = "https://api.example.test"
OTHER = "https://other.example.test"
TOKEN_URL = "https://api.example.test/oauth/token"


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        bases = (API, OTHER, "http://api.example.test", "https://api.example.test:8443", f"{API}:443")
        for base in bases:
            rsps.get(f"{base}/v1/items", json={"ok": True})
        rsps.get("https://xn--bcher-kva.example.test/v1/items", json={"ok": True})
        rsps.post(TOKEN_URL, json={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})
        yield rsps


@pytest.fixture(autouse=True)
def _no_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A netrc file on the machine would answer for hosts the tests call; none is read here.
    monkeypatch.setenv("NETRC", str(tmp_path / "absent-netrc"))


def sent(mock: responses.RequestsMock, index: int = -1) -> str:
    """Everything the request of call *index* carried: URL, headers and body, as one text."""
    request = mock.calls[index].request
    body = request.body or b""
    text = body.decode("latin-1") if isinstance(body, bytes) else str(body)
    headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
    return f"{request.url}\n{headers}\n{text}"


AUTHS: dict[str, tuple[Any, str, str | None]] = {
    # name: (auth object factory key, secret, user for Basic forms)
    "api key in a header": ("header", KEY, None),
    "api key in a custom header": ("custom", KEY, None),
    "api key in the query": ("query", KEY, None),
    "bearer token": ("bearer", TOKEN, None),
    "basic (BasicAuth)": ("basic", PASSWORD, USER),
    "basic (a tuple)": ("tuple", PASSWORD, USER),
    "basic (requests' HTTPBasicAuth)": ("requests-basic", PASSWORD, USER),
}


def make_auth(kind: str) -> Any:
    return {
        "header": lambda: APIKeyAuth(KEY),
        "custom": lambda: APIKeyAuth(KEY, header="X-Vendor-Credential"),
        "query": lambda: APIKeyAuth(KEY, query="api_key"),
        "bearer": lambda: BearerAuth(TOKEN),
        "basic": lambda: BasicAuth(USER, PASSWORD),
        "tuple": lambda: (USER, PASSWORD),
        "requests-basic": lambda: HTTPBasicAuth(USER, PASSWORD),
    }[kind]()


# -- failure cases: the credential never reaches another origin --------------------------------------


@pytest.mark.parametrize("name", list(AUTHS))
def test_bound_credentials_never_reach_another_origin(mock: responses.RequestsMock, name: str) -> None:
    kind, secret, user = AUTHS[name]
    session = ResilientSession(base_url=f"{API}/v1", auth=make_auth(kind))
    session.get(f"{OTHER}/v1/items")
    assert leaks(sent(mock), secret, user) == []
    assert "Authorization" not in mock.calls[-1].request.headers
    # The same session still authenticates its own calls (the test above is not vacuous).
    session.get("/items")
    assert leaks(sent(mock), secret, user) != []


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.test/v1/items",  # another scheme
        "https://api.example.test:8443/v1/items",  # another port
        "https://other.example.test/v1/items",  # another host
    ],
)
def test_scheme_port_and_host_each_make_another_origin(mock: responses.RequestsMock, url: str) -> None:
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth(KEY))
    session.get(url)
    assert "X-API-Key" not in mock.calls[-1].request.headers


def test_an_oauth2_token_is_neither_fetched_nor_sent_for_another_origin(
    mock: responses.RequestsMock,
) -> None:
    auth = OAuth2ClientCredentials(TOKEN_URL, "client-1", CLIENT_SECRET)
    session = ResilientSession(base_url=f"{API}/v1", auth=auth)
    session.get(f"{OTHER}/v1/items")
    assert [c.request.url for c in mock.calls] == [f"{OTHER}/v1/items"]  # no token request at all
    assert leaks(sent(mock), CLIENT_SECRET) == []
    session.get("/items")
    assert mock.calls[-1].request.headers["Authorization"] == f"Bearer {TOKEN}"
    session.get(f"{OTHER}/v1/items")  # now that a token exists, it still stays home
    assert leaks(sent(mock), TOKEN) == [] and "Authorization" not in mock.calls[-1].request.headers


def test_a_token_endpoint_on_its_own_origin_still_serves_the_integration(
    mock: responses.RequestsMock,
) -> None:
    # The token request is the auth object's own: binding the credentials does not hold it back.
    token_url = "https://auth.example.test/oauth/token"
    mock.post(token_url, json={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})
    session = ResilientSession(
        base_url=f"{API}/v1", auth=OAuth2ClientCredentials(token_url, "client-1", CLIENT_SECRET)
    )
    session.get("/items")
    assert [c.request.url for c in mock.calls] == [token_url, f"{API}/v1/items"]
    assert mock.calls[-1].request.headers["Authorization"] == f"Bearer {TOKEN}"
    session.get(f"{OTHER}/v1/items")
    assert "Authorization" not in mock.calls[-1].request.headers


def test_the_debug_line_names_the_origin_only(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth(KEY), integration="billing")
    with caplog.at_level(logging.DEBUG, logger="resilient_session.auth"):
        session.get(f"{OTHER}/v1/items?customer=c-77")
    lines = [r.getMessage() for r in caplog.records if r.name == "resilient_session.auth"]
    assert lines == [
        "credentials of integration 'billing' not sent to https://other.example.test:443: "
        "not one of its allowed origins"
    ]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "resilient_session.auth")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="resilient_session.auth"):
        session.get("/items")
    assert [r for r in caplog.records if r.name == "resilient_session.auth"] == []


def test_a_file_integration_is_bound_and_names_more_origins(
    mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_KEY", KEY)
    config = {
        "integrations": {
            "billing": {
                "base_url": f"{API}/v1",
                "auth": {"type": "api_key", "key_env": "BILLING_KEY"},
                "allowed_origins": ["https://API.example.test:8443/"],
            }
        }
    }
    session = ResilientSession.from_config(config)
    assert session.allowed_origins == ("https://api.example.test:8443",)
    session.get(f"{OTHER}/v1/items")
    assert "X-API-Key" not in mock.calls[-1].request.headers
    session.get("https://api.example.test:8443/v1/items")
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY


# -- what keeps requests' semantics ------------------------------------------------------------------


def test_session_auth_assigned_later_is_sent_everywhere_as_in_requests(mock: responses.RequestsMock) -> None:
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth("constructor-key"))
    session.auth = APIKeyAuth(KEY)
    session.get(f"{OTHER}/v1/items")
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY
    legacy = ResilientSession(base_url=f"{API}/v1")
    legacy.auth = (USER, PASSWORD)
    legacy.get(f"{OTHER}/v1/items")
    assert mock.calls[-1].request.headers["Authorization"].startswith("Basic ")


def test_auth_passed_to_one_call_goes_where_the_call_goes(mock: responses.RequestsMock) -> None:
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth("bound-key"))
    session.get(f"{OTHER}/v1/items", auth=APIKeyAuth(KEY))
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY


def test_without_base_url_or_allowed_origins_credentials_are_not_bound(mock: responses.RequestsMock) -> None:
    session = ResilientSession(auth=APIKeyAuth(KEY))
    session.get(f"{OTHER}/v1/items")
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY


def test_session_auth_reads_back_the_object_given(mock: responses.RequestsMock) -> None:
    auth = APIKeyAuth(KEY)
    session = ResilientSession(base_url=f"{API}/v1", auth=auth)
    assert session.auth is auth  # no wrapper legacy code could see


def test_user_info_the_caller_wrote_in_another_origins_url_is_sent(mock: responses.RequestsMock) -> None:
    mock.get(re.compile(r"https://[^/]*other\.example\.test/v1/own"), json={})
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth(KEY))
    session.get("https://alice:alices-pw@other.example.test/v1/own")
    headers = mock.calls[-1].request.headers
    assert "X-API-Key" not in headers
    assert headers["Authorization"] == requests.auth._basic_auth_str("alice", "alices-pw")


def test_a_netrc_entry_of_the_other_host_applies_as_for_a_session_without_auth(
    mock: responses.RequestsMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine other.example.test login nuser password npass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth(KEY))
    session.get(f"{OTHER}/v1/items")
    headers = mock.calls[-1].request.headers
    assert "X-API-Key" not in headers
    assert headers["Authorization"] == requests.auth._basic_auth_str("nuser", "npass")


# -- happy path: what counts as the same origin ------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.test/v1/items",
        "https://API.Example.TEST/v1/items",
        "https://api.example.test:443/v1/items",
        "HTTPS://api.example.test/v1/items",
    ],
)
def test_the_integrations_own_origin_gets_the_credentials(mock: responses.RequestsMock, url: str) -> None:
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth(KEY))
    session.get(url)
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY


def test_an_idna_host_matches_its_punycode(mock: responses.RequestsMock) -> None:
    session = ResilientSession(base_url="https://BÜCHER.example.test/v1", auth=APIKeyAuth(KEY))
    session.get("https://xn--bcher-kva.example.test/v1/items")
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY


class URLObject:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def test_a_url_object_is_judged_by_its_string_form(mock: responses.RequestsMock) -> None:
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth(KEY))
    session.get(URLObject(f"{API}/v1/items"))  # type: ignore[arg-type]
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY
    session.get(URLObject(f"{OTHER}/v1/items"))  # type: ignore[arg-type]
    assert "X-API-Key" not in mock.calls[-1].request.headers


def test_allowed_origins_set_later_is_read_at_the_next_call(mock: responses.RequestsMock) -> None:
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth(KEY))
    session.get(f"{OTHER}/v1/items")
    assert "X-API-Key" not in mock.calls[-1].request.headers
    session.allowed_origins = [OTHER]
    session.get(f"{OTHER}/v1/items")
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY


def test_allowed_origins_alone_binds_the_credentials(mock: responses.RequestsMock) -> None:
    session = ResilientSession(auth=APIKeyAuth(KEY), allowed_origins=API)
    session.get(f"{OTHER}/v1/items")
    assert "X-API-Key" not in mock.calls[-1].request.headers
    session.get(f"{API}/v1/items")
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY


def test_the_binding_survives_pickling(mock: responses.RequestsMock) -> None:
    session = ResilientSession(base_url=f"{API}/v1", auth=APIKeyAuth(KEY), allowed_origins=[OTHER])
    copy = pickle.loads(pickle.dumps(session))
    assert copy.allowed_origins == ("https://other.example.test:443",)
    copy.get("http://api.example.test/v1/items")
    assert "X-API-Key" not in mock.calls[-1].request.headers
    copy.get(f"{OTHER}/v1/items")
    assert mock.calls[-1].request.headers["X-API-Key"] == KEY


# -- origins -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.example.test/v1?x=1", "https://api.example.test:443"),
        ("HTTP://API.example.test", "http://api.example.test:80"),
        ("http://api.example.test:8080/", "http://api.example.test:8080"),
        ("http://user:pw@api.example.test/", "http://api.example.test:80"),
        ("http://[::1]:9000/x", "http://[::1]:9000"),
        ("https://bücher.example.test/", "https://xn--bcher-kva.example.test:443"),
        (b"https://api.example.test/", "https://api.example.test:443"),
        ("/relative/path", None),
        ("http:///no-host", None),
        ("http://[::1/", None),
    ],
)
def test_origin_of(url: str | bytes, origin: str | None) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (["https://files.example.test/upload"], ValueError, "without a path"),
        (["https://files.example.test/?token=abc"], ValueError, "without a path"),
        (["https://files.example.test/#x"], ValueError, "without a path"),
        (["https://u:secret-in-url@files.example.test"], ValueError, "user name or password"),
        (["ftp://files.example.test"], ValueError, "http:// or https://"),
        (["files.example.test"], ValueError, "http:// or https://"),
        ([42], TypeError, "URL strings"),
        (42, TypeError, "a URL or a list"),
    ],
)
def test_bad_allowed_origins_are_refused(value: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        ResilientSession(allowed_origins=value)
    assert "secret-in-url" not in str(info.value)


def test_allowed_origins_are_normalized_once_each() -> None:
    assert parse_origins(
        ["https://A.example.test", "https://a.example.test:443/", "http://a.example.test"]
    ) == (
        "https://a.example.test:443",
        "http://a.example.test:80",
    )
    assert parse_origins("https://a.example.test") == ("https://a.example.test:443",)


def test_the_file_reports_bad_allowed_origins_at_their_location() -> None:
    config = {
        "integrations": {
            "api": {
                "base_url": API,
                "allowed_origins": ["https://ok.example.test", "https://u:file-secret@x.example.test", 3],
            },
            "two": {"base_url": API, "allowed_origins": "https://ok.example.test"},
        }
    }
    with pytest.raises(InvalidConfigError) as info:
        load_config(config)
    problems = info.value.problems
    assert problems[0].startswith("integrations.api.allowed_origins[1]: ")
    assert problems[1] == "integrations.api.allowed_origins[2]: expected a URL string, got 3"
    assert problems[2].startswith("integrations.two.allowed_origins: expected an array of origins")
    assert "file-secret" not in str(info.value)


def test_check_shows_where_the_auth_may_go(monkeypatch: pytest.MonkeyPatch) -> None:
    from resilient_session.config.describe import describe, policy

    configs = load_config(
        {
            "integrations": {
                "billing": {
                    "base_url": f"{API}/v1",
                    "auth": {"type": "bearer", "token_env": "BILLING_TOKEN"},
                    "allowed_origins": ["https://uploads.example.test", f"{API}:443"],
                },
                "open": {"base_url": f"{API}/v1"},
            }
        }
    )
    billing, unauthenticated = configs["billing"], configs["open"]
    assert describe(billing)["auth_origins"] == (
        "https://api.example.test:443, https://uploads.example.test:443 only"
    )
    assert policy(billing)["auth_origins"] == [
        "https://api.example.test:443",
        "https://uploads.example.test:443",
    ]
    assert describe(unauthenticated)["auth_origins"] == "none (no auth)"
    assert policy(unauthenticated)["auth_origins"] is None
