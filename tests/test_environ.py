"""Remembered environment look-ups: every change to the environment or the netrc file is seen next call.

Against real loopback servers: an upstream, and a forward proxy that answers every request itself and
records the absolute-form request line it was sent.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from resilient_session import ResilientSession, _environ
from tests.integration.upstream import Reply, Upstream


class LoopbackProxy:
    """An HTTP forward proxy on 127.0.0.1 that counts requests and answers ``{"via": "proxy"}``."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.requested.append(self.path)
                body = b'{"via": "proxy"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def count(self) -> int:
        return len(self.requested)

    def __enter__(self) -> LoopbackProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


PROXY_VARIABLES = [name for name in os.environ if name.lower().endswith("_proxy")]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy, CA-bundle or CGI variable from the machine, and a home without a netrc file."""
    for name in [*PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "REQUEST_METHOD", "NETRC"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def proxy() -> Iterator[LoopbackProxy]:
    with LoopbackProxy() as server:
        yield server


@pytest.fixture
def session() -> Iterator[ResilientSession]:
    with ResilientSession(retry=False, breaker=False) as s:
        yield s


def via_proxy(session: requests.Session, url: str, proxy: LoopbackProxy, **kwargs: Any) -> bool:
    """Make one GET; True when it went through *proxy* (which then saw the absolute URL)."""
    before = proxy.count
    response = session.get(url, **kwargs)
    assert response.status_code == 200
    went = proxy.count == before + 1
    assert went == (response.json() == {"via": "proxy"})
    if went:
        assert proxy.requested[-1] == url
    return went


# -- proxy variables -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_proxy_variable_set_mid_process_is_used_on_the_next_call(
    name: str,
    session: ResilientSession,
    upstream: Upstream,
    proxy: LoopbackProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = upstream.script("/p", Reply())
    assert not via_proxy(session, url, proxy)  # remembered: no proxy
    assert not via_proxy(session, url, proxy)
    monkeypatch.setenv(name, proxy.url)
    assert via_proxy(session, url, proxy)
    assert via_proxy(session, url, proxy)
    assert upstream.count("/p") == 2
    monkeypatch.delenv(name)
    assert not via_proxy(session, url, proxy)
    assert upstream.count("/p") == 3


def test_proxy_value_changed_to_another_proxy(
    session: ResilientSession, upstream: Upstream, proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = upstream.script("/p", Reply())
    with LoopbackProxy() as other:
        monkeypatch.setenv("HTTP_PROXY", other.url)
        assert via_proxy(session, url, other)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)  # same length, same key set: only the value moved
        assert via_proxy(session, url, proxy)
        assert other.count == 1


def test_lowercase_variable_wins_and_empty_lowercase_removes_it_as_in_requests(
    session: ResilientSession, upstream: Upstream, proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = upstream.script("/p", Reply())
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", proxy.url)
    assert via_proxy(session, url, proxy)
    monkeypatch.setenv("http_proxy", "")
    assert not via_proxy(session, url, proxy)  # requests: an empty lowercase variable removes the proxy
    assert not via_proxy(requests.Session(), url, proxy)


def test_cgi_request_method_drops_uppercase_http_proxy(
    session: ResilientSession, upstream: Upstream, proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = upstream.script("/p", Reply())
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert via_proxy(session, url, proxy)
    monkeypatch.setenv("REQUEST_METHOD", "GET")  # CVE-2016-1000110 protection in urllib
    assert not via_proxy(session, url, proxy)


@pytest.mark.parametrize("name", ["NO_PROXY", "no_proxy"])
def test_no_proxy_change_bypasses_then_proxies_again(
    name: str,
    session: ResilientSession,
    upstream: Upstream,
    proxy: LoopbackProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = upstream.script("/p", Reply())
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert via_proxy(session, url, proxy)
    monkeypatch.setenv(name, "127.0.0.1")
    assert not via_proxy(session, url, proxy)
    assert not via_proxy(session, url, proxy)
    monkeypatch.setenv(name, "example.com,localhost")
    assert via_proxy(session, url, proxy)
    monkeypatch.setenv(name, "127.0.0.0/8")  # CIDR form
    assert not via_proxy(session, url, proxy)
    monkeypatch.setenv(name, f"127.0.0.1:{upstream.port}")  # requests ignores a port on an IP entry
    assert via_proxy(session, url, proxy)
    assert via_proxy(requests.Session(), url, proxy)
    assert upstream.count("/p") == 3


def test_no_proxy_per_host_is_remembered_per_host(
    session: ResilientSession, upstream: Upstream, proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost")
    upstream.script("/p", Reply())
    by_ip = f"http://127.0.0.1:{upstream.port}/p"
    by_name = f"http://localhost:{upstream.port}/p"
    for _ in range(2):
        assert via_proxy(session, by_ip, proxy)
        assert not via_proxy(session, by_name, proxy)


def test_per_call_no_proxy_and_proxies(
    session: ResilientSession, upstream: Upstream, proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = upstream.script("/p", Reply())
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert not via_proxy(session, url, proxy, proxies={"no_proxy": "127.0.0.1"})
    assert via_proxy(session, url, proxy)
    monkeypatch.delenv("HTTP_PROXY")
    assert via_proxy(session, url, proxy, proxies={"http": proxy.url})
    assert not via_proxy(session, url, proxy)


def test_session_proxies_and_trust_env_changes_are_seen(
    session: ResilientSession, upstream: Upstream, proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = upstream.script("/p", Reply())
    assert not via_proxy(session, url, proxy)
    session.proxies["http"] = proxy.url
    assert via_proxy(session, url, proxy)
    session.proxies = {}
    assert not via_proxy(session, url, proxy)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert via_proxy(session, url, proxy)
    session.trust_env = False
    assert not via_proxy(session, url, proxy)
    session.trust_env = True
    assert via_proxy(session, url, proxy)


def test_replaced_os_environ_is_followed(
    session: ResilientSession, upstream: Upstream, proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = upstream.script("/p", Reply())
    assert not via_proxy(session, url, proxy)
    monkeypatch.setattr(os, "environ", {"HTTP_PROXY": proxy.url})
    assert via_proxy(session, url, proxy)
    os.environ["NO_PROXY"] = "127.0.0.1"
    assert not via_proxy(session, url, proxy)


def test_caller_proxies_dict_is_filled_in_as_requests_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    ours_arg: dict[str, str] = {"http": "http://mine:1"}
    theirs_arg: dict[str, str] = {"http": "http://mine:1"}
    ours = ResilientSession().merge_environment_settings("https://x.test/", ours_arg, None, None, None)
    theirs = requests.Session().merge_environment_settings("https://x.test/", theirs_arg, None, None, None)
    assert ours == theirs
    assert type(ours["proxies"]) is type(theirs["proxies"])
    assert ours_arg == theirs_arg == {"http": "http://mine:1", "https": "http://proxy.invalid:3128"}


# -- the same answers as requests, setting by setting ----------------------------------------------

ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"HTTP_PROXY": "http://p:1", "HTTPS_PROXY": "http://p:2"},
    {"https_proxy": "http://lower:2", "HTTPS_PROXY": "http://upper:2"},
    {"ALL_PROXY": "socks5://p:3", "NO_PROXY": "*"},
    {"HTTP_PROXY": "http://p:1", "no_proxy": ".x.test"},
    {"HTTP_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8,x.test:8443"},
    {"FTP_PROXY": "http://p:4", "REQUEST_METHOD": "POST", "HTTP_PROXY": "http://p:1"},
    {"REQUESTS_CA_BUNDLE": "/etc/a.pem"},
    {"CURL_CA_BUNDLE": "/etc/b.pem"},
    {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "/etc/b.pem"},
]
URLS = [
    "http://x.test/a?b=1",
    "https://api.x.test:8443/v1",
    "https://x.test/",
    "http://10.1.2.3/",
    "HTTP://X.TEST/",
    "http://[::1]:80/",
    "file:///tmp/x",
]
CALL_SETTINGS: list[tuple[Any, Any, Any, Any]] = [
    ({}, None, None, None),
    ({"no_proxy": "x.test"}, True, None, None),
    ({"https": None}, False, "/ca.pem", ("c.pem", "k.pem")),
    (None, None, False, "c.pem"),
]


def _requests_merge(
    theirs: requests.Session, monkeypatch: pytest.MonkeyPatch, url: str, proxies: Any, *settings: Any
) -> Any:
    """requests' answer; for ``proxies=None`` while the environment names a proxy, the answer of requests
    2.34+ (which leaves the environment's proxies out) on every version: older ones raise AttributeError."""
    try:
        return theirs.merge_environment_settings(url, proxies and dict(proxies), *settings)
    except AttributeError:
        if proxies is not None:
            raise
    with monkeypatch.context() as patch:
        patch.setattr(requests.sessions, "get_environ_proxies", lambda url, no_proxy=None: {})
        return theirs.merge_environment_settings(url, None, *settings)


def test_same_settings_as_requests_through_a_sequence_of_environment_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours, theirs = ResilientSession(), requests.Session()
    session_settings: list[dict[str, Any]] = [
        {},
        {"proxies": {"http": "http://session:1"}, "verify": "/session.pem"},
        {"stream": True, "cert": "session.pem", "verify": False},
        {"trust_env": False},
    ]
    for environment in [*ENVIRONMENTS, *reversed(ENVIRONMENTS)]:
        for name in {n for e in ENVIRONMENTS for n in e}:
            monkeypatch.delenv(name, raising=False)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        for attributes in session_settings:
            for s in (ours, theirs):
                s.proxies, s.stream, s.verify, s.cert, s.trust_env = {}, False, True, None, True
                for attribute, value in attributes.items():
                    setattr(s, attribute, value)
            for url in URLS:
                for proxies, stream, verify, cert in CALL_SETTINGS:
                    mine = None if proxies is None else dict(proxies)
                    got = ours.merge_environment_settings(url, mine, stream, verify, cert)
                    want = _requests_merge(theirs, monkeypatch, url, proxies, stream, verify, cert)
                    assert got == want, (environment, attributes, url, proxies)


def test_ca_bundle_variables_reach_the_adapter(
    monkeypatch: pytest.MonkeyPatch, upstream: Upstream, session: ResilientSession
) -> None:
    seen: list[Any] = []
    adapter = session.get_adapter(upstream.url)
    original = adapter.send

    def spy(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        seen.append(kwargs["verify"])
        return original(request, **kwargs)

    monkeypatch.setattr(adapter, "send", spy)
    url = upstream.script("/p", Reply())
    session.get(url)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/curl.pem")
    session.get(url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/requests.pem")
    session.get(url)
    session.get(url, verify="/mine.pem")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE")
    session.get(url)
    assert seen == [True, "/curl.pem", "/requests.pem", "/mine.pem", True]


# -- netrc -----------------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def sent_authorization(session: requests.Session, upstream: Upstream, url: str) -> str | None:
    assert session.get(url).status_code == 200
    return upstream.calls["/n"][-1].headers.get("Authorization")


def test_netrc_file_edits_moves_and_removal_are_seen(
    session: ResilientSession, upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = upstream.script("/n", Reply())
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    assert sent_authorization(session, upstream, url) is None  # no file yet
    netrc.write_text("machine 127.0.0.1 login alice password first\n")
    assert sent_authorization(session, upstream, url) == basic("alice", "first")
    assert sent_authorization(session, upstream, url) == basic("alice", "first")
    netrc.write_text("machine 127.0.0.1 login alice password second-longer\n")
    assert sent_authorization(session, upstream, url) == basic("alice", "second-longer")
    time.sleep(0.05)  # a same-size rewrite must land past the file system's timestamp granularity
    netrc.write_text("machine 127.0.0.1 login alice password second-LONGER\n")
    assert sent_authorization(session, upstream, url) == basic("alice", "second-LONGER")
    other = tmp_path / "other-netrc"
    other.write_text("machine 127.0.0.1 login bob password elsewhere\n")
    monkeypatch.setenv("NETRC", str(other))
    assert sent_authorization(session, upstream, url) == basic("bob", "elsewhere")
    other.unlink()
    assert sent_authorization(session, upstream, url) is None
    replacement = tmp_path / "replacement"
    replacement.write_text("machine 127.0.0.1 login carol password swapped\n")
    replacement.rename(other)  # an editor's atomic save: a new inode under the same name
    assert sent_authorization(session, upstream, url) == basic("carol", "swapped")
    other.write_text("machine elsewhere.test login dave password nope\n")
    assert sent_authorization(session, upstream, url) is None  # no entry for this host


def test_home_netrc_appearing_and_trust_env_and_explicit_auth(
    session: ResilientSession, upstream: Upstream, tmp_path: Path
) -> None:
    url = upstream.script("/n", Reply())
    home = tmp_path / "home"
    home.mkdir()
    assert sent_authorization(session, upstream, url) is None
    (home / "_netrc").write_text("machine 127.0.0.1 login under password score\n")
    assert sent_authorization(session, upstream, url) == basic("under", "score")
    (home / ".netrc").write_text("machine 127.0.0.1 login dot password first\n")  # takes precedence
    assert sent_authorization(session, upstream, url) == basic("dot", "first")
    assert session.get(url, auth=("explicit", "x")).status_code == 200
    assert upstream.calls["/n"][-1].headers["Authorization"] == basic("explicit", "x")
    session.trust_env = False
    assert sent_authorization(session, upstream, url) is None
    session.trust_env = True
    session.auth = ("session", "y")
    assert sent_authorization(session, upstream, url) == basic("session", "y")


def test_url_credentials_still_apply_without_netrc(session: ResilientSession, upstream: Upstream) -> None:
    upstream.script("/n", Reply())
    url = f"http://user:pw@127.0.0.1:{upstream.port}/n"
    assert sent_authorization(session, upstream, url) == basic("user", "pw")


def test_prepared_requests_match_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine x.test login n password p\n")
    monkeypatch.setenv("NETRC", str(netrc))
    ours, theirs = ResilientSession(request_id_header=None), requests.Session()
    for s in (ours, theirs):
        s.headers["X-Session"] = "1"
        s.params = {"s": "1"}
        s.cookies.set("c", "1")

    def chunks() -> Iterator[bytes]:
        yield b"x"

    cases: list[requests.Request] = [
        requests.Request("get", "https://x.test/a", params={"q": "1"}, headers={"X-Session": None}),
        requests.Request("POST", "https://x.test/a", data={"f": "v"}, cookies={"k": "v"}),
        requests.Request("POST", "https://y.test/a", json={"j": 1}, auth=("a", "b")),
        requests.Request("POST", "https://u:p@y.test/a", data=chunks()),
        requests.Request("PUT", "https://x.test/a", files={"f": ("n.txt", b"data")}),
    ]
    for case in cases:
        got, want = ours.prepare_request(case), theirs.prepare_request(case)
        assert (got.method, got.url) == (want.method, want.url)
        got_headers, want_headers = dict(got.headers), dict(want.headers)
        if case.files:  # a random multipart boundary
            assert got_headers.pop("Content-Type") != want_headers.pop("Content-Type")
            assert isinstance(got.body, bytes) and isinstance(want.body, bytes)
            assert len(got.body) == len(want.body)
        else:
            assert got.body == want.body or (type(got.body) is type(want.body) and case.data)
        assert got_headers == want_headers
        assert got.hooks == want.hooks


def test_requests_changing_prepare_request_makes_the_session_use_requests_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def changed(self: requests.Session, request: requests.Request) -> requests.PreparedRequest:
        return requests.PreparedRequest()

    monkeypatch.setattr(requests.Session, "prepare_request", changed)
    assert not _environ._replicates_requests()


def test_patched_requests_functions_are_honoured(
    session: ResilientSession, upstream: Upstream, proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests' own test suite patches requests.sessions.get_netrc_auth; tests of applications patch
    # requests.utils.getproxies and friends. The memo must not hide a patch made after it filled up.
    url = upstream.script("/n", Reply())
    assert sent_authorization(session, upstream, url) is None
    monkeypatch.setattr(requests.sessions, "get_netrc_auth", lambda url: ("patched", "netrc"))
    assert sent_authorization(session, upstream, url) == basic("patched", "netrc")
    monkeypatch.undo()
    assert sent_authorization(session, upstream, url) is None
    proxied = upstream.script("/p", Reply())
    assert not via_proxy(session, proxied, proxy)
    monkeypatch.setattr(requests.utils, "getproxies", lambda: {"http": proxy.url})
    assert via_proxy(session, proxied, proxy)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/ping",
        "HTTP://Example.COM/a b/ü?x=1 2#frag",
        "https://bücher.example/ä",
        "http://user:p%40ss@x.test:81/%7Euser/",
        "http://x.test",
        "https://[::1]:8443/v1?",
        "ftp://x.test/file",  # not http: requests leaves it alone
    ],
)
def test_remembered_url_preparation_matches_requests(url: str) -> None:
    ours, theirs = ResilientSession(request_id_header=None), requests.Session()
    for _ in range(2):  # the second time comes from the memo
        assert ours.prepare_request(requests.Request("GET", url)).url == (
            theirs.prepare_request(requests.Request("GET", url)).url
        )
        assert ours.prepare_request(requests.Request("GET", url, params={"q": "1"})).url == (
            theirs.prepare_request(requests.Request("GET", url, params={"q": "1"})).url
        )
    prepared = ours.prepare_request(requests.Request("GET", url))
    assert "prepare_url" not in vars(prepared)  # nothing left on the instance (pickling, copies)


@pytest.mark.parametrize("url", ["127.0.0.1/x", "http://", "http://*invalid/", "http://.x.test/"])
def test_invalid_urls_raise_as_in_requests_every_time(url: str) -> None:
    ours, theirs = ResilientSession(), requests.Session()
    for _ in range(2):
        with pytest.raises(requests.RequestException) as expected:
            theirs.prepare_request(requests.Request("GET", url))
        with pytest.raises(type(expected.value)) as got:
            ours.prepare_request(requests.Request("GET", url))
        assert str(got.value) == str(expected.value)
