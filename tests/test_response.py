"""Responses built from their parts equal what requests' ``HTTPAdapter.build_response`` builds.

Each case has a loopback server send raw response bytes; urllib3 reads the head, and both builders
(``resilient_session._response.build_response`` and requests' own method) are handed the same urllib3
response. The two ``Response`` objects must agree attribute by attribute, cookies included.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
import urllib3
from requests.adapters import HTTPAdapter

from resilient_session import ResilientAdapter, ResilientSession, _response
from tests.integration.raw_server import raw_server as loopback_raw_server


@pytest.fixture
def raw_server() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback server that answers each connection with the next scripted raw response."""
    with loopback_raw_server() as (base, script, _):
        yield base, script


def _jar(jar: Any) -> Any:
    return (
        type(jar),
        sorted(vars(jar)),
        sorted(vars(jar._policy)),
        [(c.name, c.value, c.domain, c.path, c.expires, c.secure) for c in jar],
    )


def _state(response: requests.Response) -> dict[str, Any]:
    state = {k: v for k, v in vars(response).items() if k not in ("cookies", "headers", "elapsed")}
    state["type"] = type(response)
    state["keys"] = list(vars(response))
    state["headers"] = (type(response.headers), list(response.headers.items()))
    state["cookies"] = _jar(response.cookies)
    state["elapsed"] = response.elapsed.total_seconds()
    return state


HEADS = {
    "plain": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    "charset": (
        b"HTTP/1.1 404 Not Found\r\ncontent-type: text/html; charset=ISO-8859-1\r\nContent-Length: 0\r\n\r\n"
    ),
    "text without charset": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
    "repeated": b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nX-B: b\r\nContent-Length: 0\r\n\r\n",
    "cookie": b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc; Path=/\r\nContent-Length: 0\r\n\r\n",
    "cookies": (
        b"HTTP/1.1 302 Found\r\nLocation: /next\r\nset-cookie: a=1; Path=/v1\r\n"
        b"Set-Cookie: b=2; Domain=127.0.0.1; Max-Age=60\r\nContent-Length: 0\r\n\r\n"
    ),
    "cookie2": b"HTTP/1.1 200 OK\r\nSet-Cookie2: c=3; Version=1\r\nContent-Length: 0\r\n\r\n",
    "no headers": b"HTTP/1.1 204 No Content\r\n\r\n",
    "odd reason": b"HTTP/1.1 599 Whatever You Like\r\nContent-Length: 0\r\n\r\n",
}


# A bytes URL trips http.cookiejar on the cookie headers (a warning it prints, for requests' path too).
@pytest.mark.filterwarnings("ignore:http.cookiejar bug")
@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("url_type", [str, bytes])
def test_built_responses_equal_requests(
    head: str, url_type: type, raw_server: tuple[str, list[bytes]]
) -> None:
    base, script = raw_server
    script.append(HEADS[head])
    url = base + "/v1/items?x=1"
    pool = urllib3.PoolManager()
    resp = pool.request("GET", url, preload_content=False, redirect=False, retries=False)
    request = requests.Request("GET", url).prepare()
    if url_type is bytes:
        request.url = url.encode()  # type: ignore[assignment]
    adapter = ResilientAdapter()
    ours = _response.build_response(adapter, request, resp)
    theirs = HTTPAdapter.build_response(adapter, request, resp)
    assert _state(ours) == _state(theirs)
    assert isinstance(ours.url, str)
    resp.release_conn()


def test_a_response_without_a_socket_reads_cookies_as_requests_does() -> None:
    # urllib3 responses made in memory (as mocks make them) have no original http.client response:
    # requests' extract_cookies_to_jar returns at once, and the jar is never stamped.
    resp = urllib3.HTTPResponse(
        body=b"{}", headers={"Set-Cookie": "a=1", "Content-Type": "application/json"}, status=200
    )
    request = requests.Request("GET", "http://127.0.0.1:9/").prepare()
    adapter = ResilientAdapter()
    ours = _response.build_response(adapter, request, resp)
    theirs = HTTPAdapter.build_response(adapter, request, resp)
    assert _state(ours) == _state(theirs)
    assert len(ours.cookies) == 0


def test_cookies_reach_the_session_and_the_next_request(raw_server: tuple[str, list[bytes]]) -> None:
    base, script = raw_server
    script += [
        b"HTTP/1.1 302 Found\r\nLocation: /b\r\nSet-Cookie: sid=1; Path=/\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    ]
    session = ResilientSession()
    response = session.get(base + "/a")
    assert response.status_code == 200
    assert response.history[0].cookies["sid"] == "1"
    assert session.cookies["sid"] == "1"


@responses.activate
def test_mocked_responses_keep_their_cookies() -> None:
    responses.get("http://127.0.0.1:9/x", json={}, headers={"Set-Cookie": "m=1; Path=/"})
    session = ResilientSession()
    response = session.get("http://127.0.0.1:9/x")
    assert response.cookies.get("m") == "1"
    assert session.cookies.get("m") == "1"


def test_a_subclass_overriding_build_response_in_between_is_called() -> None:
    class Tagging(HTTPAdapter):
        def build_response(self, req: Any, resp: Any) -> requests.Response:
            response = super().build_response(req, resp)
            response.tagged = True  # type: ignore[attr-defined]
            return response

    class Both(ResilientAdapter, Tagging):
        pass

    resp = urllib3.HTTPResponse(body=b"", headers={}, status=204)
    request = requests.Request("GET", "http://127.0.0.1:9/").prepare()
    built = Both().build_response(request, resp)
    assert built.tagged  # type: ignore[attr-defined]
    assert built.normalized is not None  # type: ignore[attr-defined]


def test_a_wrapped_build_response_of_requests_is_called(
    raw_server: tuple[str, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, script = raw_server
    script.append(HEADS["plain"])
    seen: list[int] = []
    original = HTTPAdapter.build_response

    def wrapped(self: HTTPAdapter, req: Any, resp: Any) -> requests.Response:
        seen.append(resp.status)
        return original(self, req, resp)

    monkeypatch.setattr(HTTPAdapter, "build_response", wrapped)
    response = ResilientSession().get(base + "/x")
    assert seen == [200]
    assert response.normalized.data == {}  # type: ignore[attr-defined]


# -- reading the body -------------------------------------------------------------------------------

_GZIP_BODY = gzip.compress(b'{"zipped": true}')
BODIES = {
    "exact": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "empty": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "no content": b"HTTP/1.1 204 No Content\r\n\r\n",
    "short": b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly this",  # then the server closes
    "gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
    + str(len(_GZIP_BODY)).encode()
    + b"\r\n\r\n"
    + _GZIP_BODY,
    "bad gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "bad chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "until close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    "large": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000,
}


def _read_outcome(read: Callable[[requests.Response], Any], response: requests.Response) -> Any:
    try:
        read(response)
        result: Any = response.content
    except Exception as exc:
        result = (type(exc), str(exc), type(exc.__context__), exc.__cause__ is None)
    return result, response._content_consumed, response.raw.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize("body", sorted(BODIES))
def test_a_body_read_at_once_equals_requests_content(body: str, raw_server: tuple[str, list[bytes]]) -> None:
    base, script = raw_server
    outcomes = []
    for read in (_response.read_content, lambda r: r.content):
        script.append(BODIES[body])
        adapter = ResilientAdapter()
        request = requests.Request("GET", base + "/b").prepare()
        pool = urllib3.PoolManager()
        resp = pool.request("GET", base + "/b", preload_content=False, retries=False)
        outcomes.append(_read_outcome(read, HTTPAdapter.build_response(adapter, request, resp)))
    assert outcomes[0] == outcomes[1]


def test_a_read_timeout_mid_body_is_mapped_as_requests_maps_it() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            accepted.append(conn)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")  # and nothing more

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow"
    outcomes = []
    try:
        for read in (_response.read_content, lambda r: r.content):
            resp = urllib3.PoolManager().request(
                "GET", url, preload_content=False, retries=False, timeout=urllib3.Timeout(read=0.2)
            )
            request = requests.Request("GET", url).prepare()
            built = HTTPAdapter.build_response(ResilientAdapter(), request, resp)
            outcomes.append(_read_outcome(read, built))
    finally:
        for conn in accepted:
            conn.close()
        listener.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][0] is requests.ConnectionError
