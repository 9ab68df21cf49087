"""Secrets never reach a repr, a log line or a redacted URL."""

from __future__ import annotations

import logging
import string
import sys
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from requests.auth import AuthBase

from resilient_session import (
    APIKeyAuth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from resilient_session._redact import known_secret_values, redact_log_text, redact_url
from resilient_session.observe.logging import REDACTED_LOGGERS, RedactingFilter, install_log_redaction

SECRET = "s3cr3t-b7d9f1a3c5"
TOKEN_URL = "https://auth.example.test/token"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h.test/p?api_key=K1&page=2", "https://h.test/p?api_key=***&page=2"),
        ("https://h.test/p?access_token=K1", "https://h.test/p?access_token=***"),
        ("https://h.test/p?client_secret=K1&token=K2", "https://h.test/p?client_secret=***&token=***"),
        ("https://h.test/p?X-Amz-Signature=K1&sig=K2", "https://h.test/p?X-Amz-Signature=***&sig=***"),
        ("https://user:pw@h.test/p", "https://user:***@h.test/p"),
        ("https://h.test/p?page=2&sort=name", "https://h.test/p?page=2&sort=name"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ('127.0.0.1:80 "GET /x?api_key=K-1a2b3c&q=1 HTTP/1.1" 200 2', "K-1a2b3c"),
        ("Incremented Retry for (url='/x?token=T-1a2b3c'): Retry(total=2)", "T-1a2b3c"),
        ("Request headers were {'Authorization': 'Basic dXNlcjpwdw=='}", "dXNlcjpwdw=="),
        ("headers {'X-API-Key': 'K-9z8y7x', 'Accept': '*/*'}", "K-9z8y7x"),
        ("Request body was grant_type=client_credentials&client_secret=C-1a2b3c", "C-1a2b3c"),
        ('content {"access_token": "A-1a2b3c", "token_type": "Bearer"}', "A-1a2b3c"),
        ("Obtained token {'refresh_token': 'R-1a2b3c', 'expires_in': 3600}", "R-1a2b3c"),
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl", "eyJhbGciOi"),
    ],
)
def test_redact_log_text_catches_the_shapes_secrets_take_in_library_logs(line: str, secret: str) -> None:
    redacted = redact_log_text(line)
    assert secret not in redacted
    assert "***" in redacted


def test_redact_log_text_leaves_ordinary_lines_alone() -> None:
    line = 'http://127.0.0.1:80 "GET /items?page=2&sort=name HTTP/1.1" 200 17'
    assert redact_log_text(line) == line
    token_line = "{'token_type': 'Bearer', 'expires_in': 3600, 'scope': 'read'}"
    assert redact_log_text(token_line) == token_line


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_.~+/!$%", min_size=8, max_size=40))
def test_a_live_auth_objects_secret_is_redacted_wherever_it_appears(secret: str) -> None:
    auth = BearerAuth(secret)
    for line in (f"x {secret} y", f"prefix{secret}suffix", f"v=1&w={secret}", f"{{'w': '{secret}'}}"):
        assert secret not in redact_log_text(line)
    assert secret in known_secret_values()
    assert auth.secret_values == (secret,)


def auth_objects() -> list[AuthBase]:
    return [
        APIKeyAuth(SECRET),
        APIKeyAuth(SECRET, query="api_key"),
        BearerAuth(SECRET),
        BasicAuth("alice", SECRET),
        OAuth2ClientCredentials(TOKEN_URL, "client-1", SECRET),
        OAuth2RefreshToken(TOKEN_URL, "client-1", SECRET, refresh_token=SECRET + "-rt"),
    ]


@pytest.mark.parametrize("auth", auth_objects(), ids=lambda a: type(a).__name__)
def test_repr_and_str_of_every_auth_object_hide_the_secret(auth: AuthBase) -> None:
    for text in (repr(auth), str(auth), f"{auth!r}"):
        assert SECRET not in text
    assert "***" in repr(auth)


def test_filter_rewrites_the_record_and_its_traceback() -> None:
    auth = APIKeyAuth(SECRET)
    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "sent %s", (SECRET,), (type(exc), exc, None)
        )
    assert RedactingFilter().filter(record) is True
    assert SECRET not in record.getMessage()
    assert record.exc_text is not None and SECRET not in record.exc_text
    assert auth.secret_values == (SECRET,)


@pytest.mark.usefixtures("library_logs_redacted")
def test_filter_is_installed_once_on_every_leaky_logger() -> None:
    install_log_redaction()
    install_log_redaction()
    for name in REDACTED_LOGGERS:
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RedactingFilter)]
        assert len(filters) == 1, name


@pytest.mark.usefixtures("library_logs_redacted")
def test_a_urllib3_debug_line_is_redacted_on_its_way_to_any_handler(caplog: pytest.LogCaptureFixture) -> None:
    APIKeyAuth(SECRET, query="api_key")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s',
        "http",
        "127.0.0.1",
        80,
        "GET",
        f"/x?api_key={SECRET}",
        "HTTP/1.1",
        200,
        2,
    )
    assert "api_key=***" in caplog.text
    assert SECRET not in caplog.text


def test_auth_objects_created_while_other_threads_log_never_break_logging() -> None:
    # Building the set of live secrets iterates a weak registry that other threads add to.
    errors: list[BaseException] = []
    stop = threading.Event()
    switch = sys.getswitchinterval()

    def create() -> None:
        keep: list[BearerAuth] = []
        for i in range(20_000):
            if stop.is_set():
                return
            keep.append(BearerAuth(f"tok-{i:08d}"))
            del keep[:-300]

    def log() -> None:
        try:
            for _ in range(300):
                redact_log_text("GET /x?page=2 HTTP/1.1")
        except BaseException as exc:
            errors.append(exc)

    creators = [threading.Thread(target=create) for _ in range(2)]
    loggers = [threading.Thread(target=log) for _ in range(2)]
    sys.setswitchinterval(1e-5)
    try:
        for thread in creators + loggers:
            thread.start()
        for thread in loggers:
            thread.join(timeout=30)
    finally:
        stop.set()
        for thread in creators:
            thread.join(timeout=30)
        sys.setswitchinterval(switch)
    assert errors == []
