"""No form of a credential the request carried comes back out, when a real server echoes the request.

Every surface of the promise: ``.normalized.error.message``, ``str``/``repr`` of ``raise_for_error()``,
``OAuth2TokenError`` (text, repr, its whole exception chain), ``resilient-session call`` output, and the
configuration errors of ``check``/``call``. Each is checked for every encoding in
``tests/secret_forms.py``, for fixed secrets and for generated ones full of ``+ / = % : @`` and spaces.
"""

from __future__ import annotations

import os
import socket
import string
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient_session import (
    APIError,
    APIKeyAuth,
    BasicAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    ResilientSession,
)
from resilient_session.cli import main
from resilient_session.errors import OAuth2TokenError, TokenEndpointError
from tests.integration.echo import SHAPES, EchoServer
from tests.secret_forms import SPECIALS, leaks

pytest.importorskip("requests_oauthlib")

SECRET = "s3cr+t/k=y%20:@ x"  # every character that changes under some encoding
USER = "svc user"
CLIENT_ID = "client-7"

secrets = st.text(alphabet=string.ascii_letters + string.digits + SPECIALS, min_size=8, max_size=32).filter(
    lambda s: (
        s == s.strip()
        and sum(c in SPECIALS for c in s) >= 2
        and sum(c.isalnum() for c in s) >= 4
        and "  " not in s
    )
)
PROPERTY = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


@contextmanager
def insecure_oauth() -> Iterator[None]:
    # oauthlib refuses http token URLs unless told this is local testing.
    before = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["OAUTHLIB_INSECURE_TRANSPORT"]
        else:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = before


def chain_text(error: BaseException) -> str:
    """Everything an error tracker or ``traceback.print_exception(chain=True)`` could show of *error*:
    the formatted chain, and str, repr and every attribute of each exception in it, suppressed
    ``__context__`` included."""
    texts = ["".join(traceback.format_exception(error, chain=True))]
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        for value in vars(current).values():
            texts.append(repr(value))
            request = getattr(value, "body", None)
            if request is not None:
                texts.append(repr(request))
        for name in ("request", "response"):
            held = getattr(current, name, None)
            if held is not None:
                texts += [repr(getattr(held, "body", None)), repr(dict(getattr(held, "headers", {})))]
        stack += [current.__cause__, current.__context__]
    return "\n".join(texts)


# -- .normalized and raise_for_error() -----------------------------------------------------------------


def normalized_surfaces(session: ResilientSession, url: str) -> str:
    response = session.get(url)
    normalized = response.normalized  # type: ignore[attr-defined]
    assert normalized.error is not None
    texts = [normalized.error.message, repr(normalized)]
    with pytest.raises(APIError) as raised:
        normalized.raise_for_error()
    texts += [str(raised.value), repr(raised.value), str(raised.value.args)]
    return "\n".join(texts)


def check_normalized(echo: EchoServer, secret: str) -> None:
    cases = [
        (APIKeyAuth(secret, query="api_key"), ("target", "target-decoded", "target-lower"), None),
        (BasicAuth(USER, secret), ("authorization", "basic-decoded"), USER),
        (APIKeyAuth(secret), ("api-key",), None),
    ]
    for auth, parts, user in cases:
        with ResilientSession(auth=auth, retry=False) as session:
            for part in parts:
                for shape in SHAPES:
                    text = normalized_surfaces(session, f"{echo.url}/401/{shape}/{part}?page=1")
                    assert not leaks(text, secret, user), (type(auth).__name__, part, shape, text)


def test_an_echoed_credential_never_reaches_normalized_errors(echo: EchoServer) -> None:
    check_normalized(echo, SECRET)


def test_the_echo_server_does_echo_every_form(echo: EchoServer) -> None:
    # Without scrubbing the checks above would fail: the raw answers hold the secret.
    import requests

    url = f"{echo.url}/401/json/all"
    assert "quote_plus" in leaks(requests.get(url, params={"api_key": SECRET}).text, SECRET)
    assert "base64 inside Basic" in leaks(requests.get(url, auth=(USER, SECRET)).text, SECRET, USER)
    assert "user:password" in leaks(requests.get(url, auth=(USER, SECRET)).text, SECRET, USER)


def test_a_form_body_credential_is_scrubbed_from_normalized_errors(echo: EchoServer) -> None:
    with ResilientSession(retry=False) as session:
        response = session.post(f"{echo.url}/400/json/body-decoded", data={"password": SECRET, "x": "1"})
        text = response.normalized.error.message  # type: ignore[attr-defined]
    assert "rejected" in text
    assert not leaks(text, SECRET)


# -- OAuth2 --------------------------------------------------------------------------------------------


def oauth_failures(echo: EchoServer, secret: str) -> list[tuple[str, BaseException]]:
    failures: list[tuple[str, BaseException]] = []
    with insecure_oauth():
        for client_auth in ("basic", "body"):
            for part in ("authorization", "basic-decoded", "body", "body-decoded", "all"):
                auth = OAuth2ClientCredentials(
                    f"{echo.url}/401/oauth/{part}",
                    CLIENT_ID,
                    secret,
                    client_auth=client_auth,
                )
                with pytest.raises(OAuth2TokenError) as raised:
                    auth.get_token()
                failures.append((f"client_credentials/{client_auth}/{part}", raised.value))
        for part in ("body", "body-decoded", "all"):
            public = OAuth2RefreshToken(f"{echo.url}/400/oauth/{part}", CLIENT_ID, refresh_token=secret)
            with pytest.raises(OAuth2TokenError) as raised:
                public.get_token()
            failures.append((f"refresh_token/public/{part}", raised.value))
            confidential = OAuth2RefreshToken(
                f"{echo.url}/400/oauth/{part}", CLIENT_ID, secret, refresh_token="rt-" + secret
            )
            with pytest.raises(OAuth2TokenError) as raised:
                confidential.get_token()
            failures.append((f"refresh_token/confidential/{part}", raised.value))
    return failures


def check_oauth(echo: EchoServer, secret: str) -> None:
    for case, error in oauth_failures(echo, secret):
        assert error.__context__ is None, case
        assert "rejected" in str(error), case  # the server's description is kept, scrubbed
        text = chain_text(error)
        assert not leaks(text, secret, CLIENT_ID), (case, text)
        assert not leaks(text, "rt-" + secret), (case, text)


def test_oauth2_token_errors_never_hold_the_credentials(echo: EchoServer) -> None:
    check_oauth(echo, SECRET)


def test_an_unreachable_token_endpoint_chains_a_scrubbed_cause(closed_port: int) -> None:
    with insecure_oauth():
        auth = OAuth2ClientCredentials(
            f"http://127.0.0.1:{closed_port}/token", CLIENT_ID, SECRET, timeout=(0.5, 0.5)
        )
        with pytest.raises(TokenEndpointError) as raised:
            auth.get_token()
    error = raised.value
    assert error.__context__ is None
    cause = error.__cause__
    assert cause is not None and cause.__traceback__ is None
    assert getattr(cause, "request", None) is None  # the request (its body holds the secret) is gone
    assert not leaks(chain_text(error), SECRET, CLIENT_ID)


def test_a_token_endpoint_timeout_chains_a_scrubbed_cause() -> None:
    with socket.socket() as listener:  # accepts (the backlog does) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/token?client_secret={SECRET}"
        with insecure_oauth():
            auth = OAuth2ClientCredentials(url, CLIENT_ID, SECRET, timeout=(0.5, 0.2), client_auth="body")
            with pytest.raises(TokenEndpointError) as raised:
                auth.get_token()
    assert raised.value.__context__ is None
    assert raised.value.__cause__ is not None
    assert not leaks(chain_text(raised.value), SECRET, CLIENT_ID)


# -- resilient-session call ----------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()


def write_config(path: Path, echo: EchoServer, token_part: str) -> Path:
    path.write_text(
        f"""
[integrations.keyed]
base_url = "{echo.url}"
retry = false
auth = {{ type = "api_key", query = "api_key", key_env = "ECHO_TEST_KEY" }}

[integrations.basic]
base_url = "{echo.url}"
retry = false
auth = {{ type = "basic", username = "{USER}", password_env = "ECHO_TEST_KEY" }}

[integrations.oauth]
base_url = "{echo.url}"
retry = false
auth = {{ type = "oauth2_client_credentials", token_url = "{echo.url}/401/oauth/{token_part}",
         client_id = "{CLIENT_ID}", client_secret_env = "ECHO_TEST_KEY" }}
""".replace("\n         ", " "),
        encoding="utf-8",
    )
    return path


def check_cli(echo: EchoServer, secret: str, directory: Path) -> None:
    before = os.environ.get("ECHO_TEST_KEY")
    os.environ["ECHO_TEST_KEY"] = secret
    try:
        for token_part in ("authorization", "basic-decoded", "all"):
            config = str(write_config(directory / f"{token_part}.toml", echo, token_part))
            runs = [
                ("keyed", f"/401/{shape}/{part}") for shape in SHAPES for part in ("target", "target-decoded")
            ]
            runs += [("basic", f"/401/{shape}/basic-decoded") for shape in SHAPES]
            runs += [("keyed", "/200/json/target"), ("basic", "/403/json/all")]
            with insecure_oauth():
                runs += [("oauth", "/200/json/all")]
                for name, path in runs:
                    code, output = run_cli("call", config, name, "GET", path)
                    assert code in (4, 5, 0, 1, 8), (name, path, output)
                    assert "rejected" in output or name == "oauth", (name, path, output)
                    user = USER if name == "basic" else CLIENT_ID if name == "oauth" else None
                    assert not leaks(output, secret, user), (name, path, output)
    finally:
        if before is None:
            os.environ.pop("ECHO_TEST_KEY", None)
        else:
            os.environ["ECHO_TEST_KEY"] = before


def test_call_output_never_holds_the_credentials(echo: EchoServer, tmp_path: Path) -> None:
    check_cli(echo, SECRET, tmp_path)


# -- configuration errors ------------------------------------------------------------------------------


def config_errors(secret: str, directory: Path) -> list[str]:
    from urllib.parse import quote

    encoded = quote(secret, safe="")
    documents = {
        "scheme typo": f'base_url = "htps://u:{encoded}@api.example.com/v1"',
        "no host": f'base_url = "https:///v1?api_key={encoded}"',
        "token_params": (
            'base_url = "https://api.example.com"\n'
            'auth = { type = "oauth2_client_credentials", token_url = "https://id.example.com/token", '
            'client_id = "c", client_secret_env = "CS", '
            f'token_params = {{ client_secret = "{_toml(secret)}" }} }}'
        ),
        "literal secret": (
            f'base_url = "https://api.example.com"\nauth = {{ type = "bearer", token = "{_toml(secret)}" }}'
        ),
        "secret in token_env": (
            'base_url = "https://api.example.com"\n'
            f'auth = {{ type = "bearer", token_env = "{_toml(secret)}" }}'
        ),
    }
    outputs = []
    for name, document in documents.items():
        path = directory / f"{name.replace(' ', '_')}.toml"
        path.write_text(f"[integrations.api]\n{document}\n", encoding="utf-8")
        for command in (["check", str(path), "--require-env"], ["call", str(path), "api", "GET", "/x"]):
            code, output = run_cli(*command)
            assert code == 3, (name, command, output)
            outputs.append(output)
    return outputs


def _toml(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def test_config_errors_never_print_a_secret_written_in_the_file(tmp_path: Path) -> None:
    for output in config_errors(SECRET, tmp_path):
        assert not leaks(output, SECRET, "u"), output


def test_a_pasted_secret_that_is_a_valid_variable_name_is_not_printed(tmp_path: Path) -> None:
    path = tmp_path / "pasted.toml"
    path.write_text(
        '[integrations.api]\nbase_url = "https://api.example.com"\n'
        'auth = { type = "bearer", token_env = "sk_live_4eC39HqLyjWDarjtT1zdp7dc" }\n',
        encoding="utf-8",
    )
    for command in (["check", str(path), "--require-env"], ["call", str(path), "api", "GET", "/x"]):
        code, output = run_cli(*command)
        assert code == 3
        assert "is not set" in output
        assert "4eC39HqLyjWDarjtT1zdp7dc" not in output, output


# -- every surface, generated secrets ------------------------------------------------------------------


@PROPERTY
@given(secret=secrets)
def test_no_surface_shows_any_form_of_a_generated_secret(
    echo: EchoServer, tmp_path_factory: pytest.TempPathFactory, secret: str
) -> None:
    check_normalized(echo, secret)
    check_oauth(echo, secret)
    directory = tmp_path_factory.mktemp("property")
    check_cli(echo, secret, directory)
    for output in config_errors(secret, directory):
        assert not leaks(output, secret, "u"), output
