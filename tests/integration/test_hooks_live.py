"""Response hooks see the response as requests gives it to them (body unread, socket live), and the deadline,
size and retry guarantees still hold: an NTLM login with channel binding against a real NTLM acceptor."""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import spnego
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from requests.adapters import HTTPAdapter
from requests_ntlm import HttpNtlmAuth
from spnego.channel_bindings import GssChannelBindings

from resilient_session import (
    DeadlineExceededError,
    MalformedResponseError,
    ResilientAdapter,
    ResilientSession,
    RetryBudget,
    RetryPolicy,
)
from resilient_session.errors import IncompleteBodyError
from tests.integration.rawserver import (
    Behaviour,
    RawServer,
    answer,
    cut_mid_body,
    drip_body,
    reset_before_answer,
)

USER, PASSWORD = "alice", "correct horse battery staple"


def end_point_hash(der: bytes) -> bytes:
    """RFC 5929 tls-server-end-point: the certificate's own signature hash, SHA-256 for MD5 and SHA-1."""
    algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return digest.finalize()


@dataclass
class Seen:
    path: str
    authorization: str
    client_port: int


@dataclass
class NtlmServer:
    """An HTTPS server on 127.0.0.1 that logs users in with NTLM, through pyspnego's acceptor, and insists
    on channel binding to the certificate it serves (*binding*; None: its own certificate's)."""

    context: ssl.SSLContext
    der: bytes
    binding: bytes | None = None
    #: Logins whose answer breaks off mid-body (the connection closes short of its Content-Length).
    cut_logins: int = 0
    seen: list[Seen] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.socket = self.context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> NtlmServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        application_data = b"tls-server-end-point:" + (server.binding or end_point_hash(server.der))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            acceptor: Any = None  # NTLM authenticates the connection: one context per connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                header = self.headers.get("Authorization", "")
                with server.lock:
                    server.seen.append(Seen(self.path, header, self.client_address[1]))
                if not header.startswith("NTLM "):
                    self._reply(401, b"log in first", {"WWW-Authenticate": "NTLM"})
                    return
                if self.acceptor is None:
                    self.acceptor = spnego.server(
                        protocol="ntlm",
                        channel_bindings=GssChannelBindings(application_data=application_data),
                    )
                try:
                    token = self.acceptor.step(base64.b64decode(header[5:]))
                except spnego.exceptions.SpnegoError as exc:
                    with server.lock:
                        server.failures.append(type(exc).__name__)
                    self._reply(403, b"refused", {})
                    self.close_connection = True
                    return
                if token:
                    self._reply(
                        401, b"challenge", {"WWW-Authenticate": "NTLM " + base64.b64encode(token).decode()}
                    )
                    return
                with server.lock:
                    cut = server.cut_logins > 0
                    server.cut_logins -= cut
                body = json.dumps({"user": self.acceptor.client_principal}).encode()
                self._reply(200, body, {}, promised=len(body) + 100 if cut else None)

            def _reply(
                self, status: int, body: bytes, headers: dict[str, str], promised: int | None = None
            ) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(promised or len(body)))
                self.end_headers()
                self.wfile.write(body)
                if promised:
                    self.close_connection = True

        return Handler


@pytest.fixture
def users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The acceptor's user store: pyspnego reads NTLM_USER_FILE (``DOMAIN:USER:PASSWORD`` lines)."""
    store = tmp_path / "ntlm-users"
    store.write_text(f"TESTDOM:{USER}:{PASSWORD}\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(store))


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@contextlib.contextmanager
def ntlm_server(ca: trustme.CA, binding: bytes | None = None) -> Iterator[tuple[NtlmServer, str]]:
    issued = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(context)
    der = ssl.PEM_cert_to_DER_cert(issued.cert_chain_pems[0].bytes().decode())
    with NtlmServer(context, der, binding) as server, ca.cert_pem.tempfile() as ca_file:
        yield server, ca_file


SESSIONS: dict[str, Callable[[], requests.Session]] = {
    "ResilientSession": lambda: ResilientSession(breaker=False),
    "ResilientSession, HTTPAdapter mounted": lambda: mounted(ResilientSession(breaker=False), HTTPAdapter()),
    "requests.Session, ResilientAdapter mounted": lambda: mounted(requests.Session(), ResilientAdapter()),
}


def mounted(session: requests.Session, adapter: Any) -> requests.Session:
    session.mount("https://", adapter)
    return session


@pytest.mark.usefixtures("users")
def test_a_login_bound_to_another_certificate_is_refused(ca: trustme.CA) -> None:
    # The acceptor really checks the binding: one computed for another certificate fails the login.
    with ntlm_server(ca, binding=b"\x00" * 32) as (server, ca_file):
        session = ResilientSession(breaker=False)
        response = session.get(
            server.url + "/me", auth=HttpNtlmAuth(f"TESTDOM\\{USER}", PASSWORD), verify=ca_file
        )
    assert response.status_code == 403
    assert server.failures == ["BadBindingsError"]


@pytest.mark.usefixtures("users")
def test_a_wrong_password_is_refused(ca: trustme.CA) -> None:
    with ntlm_server(ca) as (server, ca_file):
        session = ResilientSession(breaker=False)
        response = session.get(
            server.url + "/me", auth=HttpNtlmAuth(f"TESTDOM\\{USER}", "wrong"), verify=ca_file
        )
    assert response.status_code == 403
    assert server.failures


@pytest.mark.usefixtures("users")
@pytest.mark.parametrize("make", list(SESSIONS.values()), ids=list(SESSIONS))
def test_an_ntlm_login_with_channel_binding_succeeds(
    ca: trustme.CA, make: Callable[[], requests.Session]
) -> None:
    # Before: the adapter had read the 401's body, the socket was gone, and requests-ntlm's hook raised
    # AttributeError looking for the server certificate.
    with ntlm_server(ca) as (server, ca_file):
        session = make()
        response = session.get(
            server.url + "/me", auth=HttpNtlmAuth(f"TESTDOM\\{USER}", PASSWORD), verify=ca_file
        )
    assert server.failures == []
    assert response.status_code == 200
    assert response.json() == {"user": f"TESTDOM\\{USER}"}
    assert [r.status_code for r in response.history] == [401, 401]
    # Anonymous, negotiate, authenticate: three requests, the handshake on one connection.
    assert [s.authorization.split(" ")[0] for s in server.seen] == ["", "NTLM", "NTLM"]
    assert len({s.client_port for s in server.seen[1:]}) == 1


@pytest.mark.usefixtures("users")
def test_a_login_whose_answer_breaks_off_logs_in_again(ca: trustme.CA) -> None:
    # The hooks already completed the handshake on the connection that broke: the session sends the hop
    # again, and requests-ntlm logs in again on a new connection.
    with ntlm_server(ca) as (server, ca_file):
        server.cut_logins = 1
        session = ResilientSession(retry=RetryPolicy(2, backoff_factor=0), breaker=False)
        response = session.get(
            server.url + "/me", auth=HttpNtlmAuth(f"TESTDOM\\{USER}", PASSWORD), verify=ca_file
        )
    assert server.failures == []
    assert response.json() == {"user": f"TESTDOM\\{USER}"}
    assert [s.authorization.split(" ")[0] for s in server.seen] == ["", "NTLM", "NTLM"] * 2
    assert server.seen[1].client_port != server.seen[4].client_port


# -- what a hook sees, and what still holds ------------------------------------------------------


def sees(response: requests.Response) -> dict[str, Any]:
    raw = response.raw
    return {
        "consumed": response._content_consumed,  # type: ignore[attr-defined]
        "socket": getattr(raw._fp, "fp", None) is not None,  # what requests-ntlm and requests-kerberos read
        "status": response.status_code,
    }


@pytest.mark.parametrize("make", [requests.Session, ResilientSession])
def test_a_hook_sees_the_body_unread_and_the_socket_live_as_in_requests(
    make: Callable[[], requests.Session],
) -> None:
    seen: list[dict[str, Any]] = []
    with RawServer() as server:
        server.script(answer(200, b'{"id": 7}'))
        response = make().get(server.url + "/x", hooks={"response": lambda r, *a, **k: seen.append(sees(r))})
    assert seen == [{"consumed": False, "socket": True, "status": 200}]
    assert response.json() == {"id": 7}


def test_a_hook_reads_the_peer_certificate_from_the_socket_over_https(ca: trustme.CA) -> None:
    # What requests-kerberos and negotiate-sspi do in their hook for channel binding.
    issued = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(context)
    served = ssl.PEM_cert_to_DER_cert(issued.cert_chain_pems[0].bytes().decode())
    certificates: list[bytes] = []

    def hook(r: requests.Response, *args: Any, **kwargs: Any) -> None:
        certificates.append(r.raw._fp.fp.raw._sock.getpeercert(True))  # type: ignore[union-attr]

    with RawServer(tls=context) as server, ca.cert_pem.tempfile() as ca_file:
        server.script(answer(200, b'{"id": 7}'))
        response = ResilientSession(breaker=False).get(
            server.url + "/x", verify=ca_file, hooks={"response": hook}
        )
    assert certificates == [served]
    assert response.json() == {"id": 7}


@pytest.mark.parametrize("failure", [answer(503), reset_before_answer()], ids=["503", "connection reset"])
def test_retries_happen_before_the_hooks(failure: Behaviour) -> None:
    seen: list[int] = []
    with RawServer() as server:
        server.script(failure, answer(200))
        session = ResilientSession(retry=RetryPolicy(2, backoff_factor=0), breaker=False)
        response = session.get(
            server.url + "/x", hooks={"response": lambda r, *a, **k: seen.append(r.status_code)}
        )
        assert server.count == 2
    assert seen == [200]
    assert response.status_code == 200


@pytest.mark.parametrize("hook_reads", [False, True], ids=["requests reads", "the hook reads"])
def test_max_response_size_bounds_a_body_read_after_the_hooks(hook_reads: bool) -> None:
    def hook(r: requests.Response, *args: Any, **kwargs: Any) -> None:
        if hook_reads:
            r.content  # noqa: B018

    with RawServer() as server:
        server.script(answer(200, b"x" * 200_000))
        session = ResilientSession(max_response_size=1000, breaker=False)
        with pytest.raises(MalformedResponseError) as caught:
            session.get(server.url + "/big", hooks={"response": hook})
    assert caught.value.code == "body_too_large"


def test_a_body_within_max_response_size_is_read_after_the_hooks() -> None:
    with RawServer() as server:
        server.script(answer(200, b'{"id": 7}'))
        session = ResilientSession(max_response_size=1000, breaker=False)
        response = session.get(server.url + "/x", hooks={"response": lambda r, *a, **k: None})
    assert response.json() == {"id": 7}


def test_the_deadline_ends_a_body_read_after_the_hooks() -> None:
    with RawServer() as server:
        server.script(drip_body(0.1))
        session = ResilientSession(deadline=1.0, breaker=False, timeout=(1, 5))
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            session.get(server.url + "/drip", hooks={"response": lambda r, *a, **k: None})
        elapsed = time.monotonic() - started
    assert elapsed < 1.5


@pytest.mark.parametrize("hook_reads", [False, True], ids=["requests reads", "the hook reads"])
def test_a_body_that_breaks_off_after_the_hooks_sends_the_hop_again(hook_reads: bool) -> None:
    seen: list[int] = []

    def hook(r: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(r.status_code)
        if hook_reads:
            r.content  # noqa: B018

    with RawServer() as server:
        server.script(cut_mid_body(), answer(200, b'{"id": 7}'))
        session = ResilientSession(retry=RetryPolicy(2, backoff_factor=0), breaker=False)
        response = session.get(server.url + "/x", hooks={"response": hook})
        assert server.count == 2
    assert response.json() == {"id": 7}
    assert seen == [200, 200]  # the hooks saw each answer
    assert response.attempts == 2  # type: ignore[attr-defined]


def test_a_body_broken_after_the_hooks_counts_on_the_same_retry_chain() -> None:
    with RawServer() as server:
        server.script(answer(503), cut_mid_body(), cut_mid_body(), answer(200))
        session = ResilientSession(retry=RetryPolicy(2, backoff_factor=0), breaker=False)
        with pytest.raises(IncompleteBodyError) as caught:
            session.get(server.url + "/x", hooks={"response": lambda r, *a, **k: None})
        assert server.count == 3  # total=2: at most three requests, the 503 included
    assert isinstance(caught.value, requests.exceptions.ChunkedEncodingError)
    assert caught.value.attempts == 3


def test_the_budget_pays_for_sending_again_after_the_hooks() -> None:
    # 10 tokens pay for exactly two retries of 5, as without hooks.
    with RawServer() as server:
        server.script(answer(503), cut_mid_body())
        budget = RetryBudget(capacity=10, retry_cost=5)
        session = ResilientSession(retry=RetryPolicy(5, backoff_factor=0), breaker=False, budget=budget)
        with pytest.raises(IncompleteBodyError):
            session.get(server.url + "/x", hooks={"response": lambda r, *a, **k: None})
        assert server.count == 3


def test_no_send_again_waits_past_the_deadline() -> None:
    with RawServer() as server:
        server.script(cut_mid_body(), answer(200))
        session = ResilientSession(retry=RetryPolicy(3, backoff_factor=5, full_jitter=False), breaker=False)
        started = time.monotonic()
        with pytest.raises(IncompleteBodyError):
            session.get(server.url + "/x", deadline=1.0, hooks={"response": lambda r, *a, **k: None})
        assert time.monotonic() - started < 1.0
        assert server.count == 1


def test_a_body_that_cannot_be_sent_twice_is_not_sent_again() -> None:
    with RawServer() as server:
        server.script(cut_mid_body(), answer(200))
        session = ResilientSession(retry=RetryPolicy(2, backoff_factor=0), breaker=False)
        with pytest.raises(IncompleteBodyError):
            session.put(
                server.url + "/x", data=iter([b"a", b"b"]), hooks={"response": lambda r, *a, **k: None}
            )
        assert server.count == 1


def test_on_a_plain_session_a_body_broken_after_the_hooks_is_typed_and_not_sent_again() -> None:
    # Only a ResilientSession can send the hop again (requests dispatched the hooks), not the adapter alone.
    seen: list[int] = []
    with RawServer() as server:
        server.script(cut_mid_body(), answer(200))
        session = requests.Session()
        session.mount("http://", ResilientAdapter(RetryPolicy(2, backoff_factor=0)))
        with pytest.raises(IncompleteBodyError) as caught:
            session.get(server.url + "/x", hooks={"response": lambda r, *a, **k: seen.append(r.status_code)})
        assert server.count == 1
    assert isinstance(caught.value, requests.exceptions.ChunkedEncodingError)
    assert seen == [200]
