"""API key, bearer and basic auth: injection, configuration, redaction and redirect bookkeeping."""

from __future__ import annotations

import base64
import gc
import io
from collections.abc import Iterator

import pytest
import requests
import responses
from requests.auth import HTTPBasicAuth

from resilient_session import APIKeyAuth, BasicAuth, BearerAuth, ConfigurationError, ResilientSession
from resilient_session._redact import redact_log_text, redact_url
from resilient_session.auth import CredentialAuth, carry_credentials, env_secret

API = "https://api.example.test"
KEY = "k-7c1d9a3e5b"
TOKEN = "tok-2f8e4a6c0d"
PASSWORD = "pw-9b3d5f7a1c"


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/items", json={"ok": True})
        yield mock


def sent(mock: responses.RequestsMock, index: int = -1) -> requests.PreparedRequest:
    return mock.calls[index].request


# -- APIKeyAuth -------------------------------------------------------------------------------------


def test_api_key_defaults_to_x_api_key_header(api: responses.RequestsMock) -> None:
    ResilientSession(auth=APIKeyAuth(KEY)).get(f"{API}/items")
    assert sent(api).headers["X-API-Key"] == KEY
    assert "Authorization" not in sent(api).headers


def test_api_key_in_a_custom_header_per_request(api: responses.RequestsMock) -> None:
    requests.get(f"{API}/items", auth=APIKeyAuth(KEY, header="Api-Key"))
    assert sent(api).headers["Api-Key"] == KEY
    assert "X-API-Key" not in sent(api).headers


def test_api_key_in_the_query_keeps_other_parameters_byte_for_byte(api: responses.RequestsMock) -> None:
    session = ResilientSession(auth=APIKeyAuth(KEY, query="api_key"))
    session.get(f"{API}/items?q=a%20b&api_key=stale&x=1")
    url = sent(api).url
    assert url is not None
    assert url.endswith(f"?q=a%20b&x=1&api_key={KEY}")
    assert url.count("api_key=") == 1


def test_api_key_query_name_is_a_secret_name_while_the_auth_lives() -> None:
    auth = APIKeyAuth(KEY, query="custkey_q")
    assert redact_url(f"{API}/items?custkey_q={KEY}&page=2") == f"{API}/items?custkey_q=***&page=2"
    del auth
    gc.collect()
    assert redact_url(f"{API}/items?custkey_q=v&page=2") == f"{API}/items?custkey_q=v&page=2"


def test_api_key_custom_header_name_is_a_secret_name_while_the_auth_lives() -> None:
    auth = APIKeyAuth("zz-custom-value-1", header="X-Vendor-Cred")
    other = APIKeyAuth("zz-other-value-22", header="X-Vendor-Cred")
    assert "zz-custom" not in redact_log_text("{'X-Vendor-Cred': 'zz-custom-value-1'}")
    del auth
    gc.collect()
    assert "zz-unknown" not in redact_log_text("{'X-Vendor-Cred': 'zz-unknown-value'}")  # other names it
    del other
    gc.collect()
    assert "zz-unknown" in redact_log_text("{'X-Vendor-Cred': 'zz-unknown-value'}")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((KEY, "X-Key"), {"query": "k"}),
        (("",), {}),
        ((KEY, "Bad Header"), {}),
        ((KEY,), {"query": "a&b"}),
    ],
)
def test_api_key_rejects_bad_configuration(args: tuple[str, ...], kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        APIKeyAuth(*args, **kwargs)


def test_api_key_repr_hides_the_key() -> None:
    text = repr(APIKeyAuth(KEY, query="api_key"))
    assert KEY not in text
    assert "***" in text and "api_key" in text


def test_api_key_declares_what_it_sets() -> None:
    header = APIKeyAuth(KEY)
    query = APIKeyAuth(KEY, query="api_key")
    assert isinstance(header, CredentialAuth)
    assert header.header_names == {"X-API-Key"} and header.query_keys == frozenset()
    assert query.query_keys == {"api_key"} and query.header_names == frozenset()
    assert header.secret_values == (KEY,)


def test_api_key_from_env(monkeypatch: pytest.MonkeyPatch, api: responses.RequestsMock) -> None:
    monkeypatch.setenv("BILLING_API_KEY", KEY)
    ResilientSession(auth=APIKeyAuth.from_env("BILLING_API_KEY", header="X-Billing-Key")).get(f"{API}/items")
    assert sent(api).headers["X-Billing-Key"] == KEY


def test_missing_env_variable_is_named_in_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ConfigurationError, match="NO_SUCH_KEY_VAR") as info:
        APIKeyAuth.from_env("NO_SUCH_KEY_VAR")
    assert isinstance(info.value, ValueError)


def test_empty_env_variable_is_rejected_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLANK_TOKEN_VAR", "   ")
    with pytest.raises(ConfigurationError, match="'BLANK_TOKEN_VAR' is empty"):
        BearerAuth.from_env("BLANK_TOKEN_VAR")


def test_env_secret_never_puts_the_value_in_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SECRET_VAR", KEY)
    assert env_secret("SOME_SECRET_VAR") == KEY
    monkeypatch.setenv("SOME_SECRET_VAR", "")
    with pytest.raises(ConfigurationError) as info:
        env_secret("SOME_SECRET_VAR")
    assert KEY not in str(info.value)


# -- BearerAuth -------------------------------------------------------------------------------------


def test_bearer_static_token(api: responses.RequestsMock) -> None:
    ResilientSession(auth=BearerAuth(TOKEN)).get(f"{API}/items")
    assert sent(api).headers["Authorization"] == f"Bearer {TOKEN}"


def test_bearer_provider_is_called_for_every_request(api: responses.RequestsMock) -> None:
    tokens = iter(["rot-aaaa1", "rot-bbbb2"])
    auth = BearerAuth(token_provider=lambda: next(tokens))
    session = ResilientSession()
    session.get(f"{API}/items", auth=auth)
    session.get(f"{API}/items", auth=auth)
    assert [c.request.headers["Authorization"] for c in api.calls] == ["Bearer rot-aaaa1", "Bearer rot-bbbb2"]
    assert auth.secret_values == ("rot-bbbb2",)


def test_bearer_provider_returning_nothing_fails_loudly(api: responses.RequestsMock) -> None:
    with pytest.raises(ConfigurationError, match="token_provider"):
        ResilientSession(auth=BearerAuth(token_provider=lambda: "")).get(f"{API}/items")
    assert len(api.calls) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: APIKeyAuth(KEY + "\n"),
        lambda: APIKeyAuth(KEY + "\r\n", header="X-Vendor-Credential"),
        lambda: BearerAuth(TOKEN + "\n"),
        lambda: BearerAuth("tok\x00" + TOKEN),
    ],
)
def test_a_secret_with_a_line_break_is_refused_without_echoing_it(make: object) -> None:
    # http.client would refuse the header later with "Invalid header value b'<the secret>\n'".
    with pytest.raises(ConfigurationError, match="line break or control character") as info:
        make()  # type: ignore[operator]
    assert KEY not in f"{info.value!s} {info.value!r}" and TOKEN not in str(info.value)


def test_an_api_key_with_a_line_break_may_go_in_the_query(api: responses.RequestsMock) -> None:
    api.get(f"{API}/q", json={})
    ResilientSession().get(f"{API}/q", auth=APIKeyAuth("a\nb", query="api_key"))
    assert sent(api).url == f"{API}/q?api_key=a%0Ab"


def test_a_provider_token_with_a_line_break_fails_before_sending(api: responses.RequestsMock) -> None:
    auth = BearerAuth(token_provider=lambda: TOKEN + "\n")
    with pytest.raises(ConfigurationError, match="token_provider") as info:
        ResilientSession().get(f"{API}/items", auth=auth)
    assert TOKEN not in str(info.value)
    assert len(api.calls) == 0


@pytest.mark.parametrize("kwargs", [{}, {"token": TOKEN, "token_provider": lambda: TOKEN}, {"token": ""}])
def test_bearer_needs_exactly_one_source(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        BearerAuth(**kwargs)  # type: ignore[arg-type]


def test_bearer_repr_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TOKEN", TOKEN)
    auth = BearerAuth.from_env("CRM_TOKEN")
    assert TOKEN not in repr(auth) and "***" in repr(auth)
    assert auth.header_names == {"Authorization"}


# -- basic ------------------------------------------------------------------------------------------


def test_basic_auth_tuples_and_httpbasicauth_keep_working(api: responses.RequestsMock) -> None:
    expected = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    session = ResilientSession(auth=("alice", PASSWORD))
    session.get(f"{API}/items")
    session.get(f"{API}/items", auth=HTTPBasicAuth("alice", PASSWORD))
    session.get(f"{API}/items", auth=BasicAuth("alice", PASSWORD))
    assert [c.request.headers["Authorization"] for c in api.calls] == [expected] * 3


def test_basic_auth_is_an_httpbasicauth_with_a_safe_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVC_USER", "alice")
    monkeypatch.setenv("SVC_PASSWORD", PASSWORD)
    auth = BasicAuth.from_env("SVC_USER", "SVC_PASSWORD")
    assert isinstance(auth, HTTPBasicAuth)
    assert auth == HTTPBasicAuth("alice", PASSWORD)
    assert PASSWORD not in repr(auth) and "alice" in repr(auth)
    assert auth.secret_values == (PASSWORD,)


def test_basic_auth_from_one_env_variable_holding_user_and_password(
    monkeypatch: pytest.MonkeyPatch, api: responses.RequestsMock
) -> None:
    monkeypatch.setenv("LEGACY_CREDENTIALS", f"alice:{PASSWORD}:x")
    auth = BasicAuth.from_env("LEGACY_CREDENTIALS")
    assert (auth.username, auth.password) == ("alice", f"{PASSWORD}:x")
    monkeypatch.setenv("LEGACY_CREDENTIALS", PASSWORD)
    with pytest.raises(ConfigurationError, match="LEGACY_CREDENTIALS") as info:
        BasicAuth.from_env("LEGACY_CREDENTIALS")
    assert PASSWORD not in str(info.value)


def test_basic_auth_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVC_USER", "alice")
    monkeypatch.delenv("SVC_PASSWORD", raising=False)
    with pytest.raises(ConfigurationError, match="SVC_PASSWORD"):
        BasicAuth.from_env("SVC_USER", "SVC_PASSWORD")


def test_auth_objects_work_with_a_file_body(api: responses.RequestsMock) -> None:
    api.post(f"{API}/upload", json={})
    requests.post(f"{API}/upload", data=io.BytesIO(b"payload"), auth=APIKeyAuth(KEY))
    assert sent(api).headers["X-API-Key"] == KEY


# -- redirect bookkeeping (the wire-level proof is in tests/integration/test_auth_redirects.py) ------


def prepared(
    url: str, auth: requests.auth.AuthBase | None = None, /, **headers: str
) -> requests.PreparedRequest:
    return requests.Request("GET", url, headers=headers, auth=auth).prepare()


def redirect_of(previous: requests.PreparedRequest, url: str) -> requests.PreparedRequest:
    new = previous.copy()
    new.url = url
    return new


def test_cross_origin_strips_auth_headers_query_keys_and_secret_named_headers() -> None:
    previous = prepared(f"{API}/a", APIKeyAuth(KEY, header="X-Custom-Cred"), **{"X-Auth-Token": "t-12345"})
    new = redirect_of(previous, "https://other.test/b?keep=1")
    carry_credentials(previous, new, cross_origin=True)
    assert "X-Custom-Cred" not in new.headers and "X-Auth-Token" not in new.headers

    previous = prepared(f"{API}/a", APIKeyAuth(KEY, query="api_key"))
    new = redirect_of(previous, f"https://other.test/b?keep=1&api_key={KEY}")
    carry_credentials(previous, new, cross_origin=True)
    assert new.url == "https://other.test/b?keep=1"


def test_cross_origin_leaves_proxy_credentials_and_cookies_to_requests() -> None:
    previous = prepared(f"{API}/a", **{"Proxy-Authorization": "Basic cHJveHk6cHc=", "Cookie": "a=b"})
    new = redirect_of(previous, "https://other.test/b")
    carry_credentials(previous, new, cross_origin=True)
    assert new.headers["Proxy-Authorization"] == "Basic cHJveHk6cHc="
    assert new.headers["Cookie"] == "a=b"


def test_same_origin_keeps_headers_and_restores_a_dropped_query_key() -> None:
    previous = prepared(f"{API}/a", APIKeyAuth(KEY, query="api_key"))
    new = redirect_of(previous, f"{API}/b?page=2")
    carry_credentials(previous, new, cross_origin=False)
    assert new.url == f"{API}/b?page=2&api_key={KEY}"
    # ... and the next hop still knows what to strip.
    third = redirect_of(new, f"https://other.test/c?api_key={KEY}")
    carry_credentials(new, third, cross_origin=True)
    assert third.url == "https://other.test/c"


def test_requests_without_credential_auth_are_left_alone_on_same_origin() -> None:
    previous = prepared(f"{API}/a", **{"X-API-Key": KEY})
    new = redirect_of(previous, f"{API}/b")
    carry_credentials(previous, new, cross_origin=False)
    assert new.headers["X-API-Key"] == KEY and new.url == f"{API}/b"
