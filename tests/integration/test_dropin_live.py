"""Drop-in: code written for requests.Session behaves the same with ResilientSession (real server)."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest
import requests
from requests.adapters import HTTPAdapter

from resilient_session import ResilientAdapter, ResilientSession

from .upstream import Reply, Upstream

SESSIONS: list[Callable[[], requests.Session]] = [requests.Session, ResilientSession]


@pytest.fixture(params=SESSIONS, ids=["requests", "resilient"])
def session(request: pytest.FixtureRequest) -> requests.Session:
    made: requests.Session = request.param()
    return made


def _redirect(status: int, location: str) -> Reply:
    return Reply(status, b"", headers={"Location": location})


@pytest.mark.parametrize(
    ("status", "method_after"), [(301, "GET"), (302, "GET"), (303, "GET"), (307, "POST"), (308, "POST")]
)
def test_redirects_follow_requests_rules(
    session: requests.Session, upstream: Upstream, status: int, method_after: str
) -> None:
    upstream.script("/from", _redirect(status, "/to"))
    upstream.script("/to", Reply(200, b'{"here": true}'))
    response = session.post(upstream.url + "/from", data=b"payload")
    assert isinstance(response, requests.Response)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [status]
    assert response.url == upstream.url + "/to"
    assert upstream.calls["/to"][0].method == method_after


def test_allow_redirects_false_exposes_next(session: requests.Session, upstream: Upstream) -> None:
    upstream.script("/from", _redirect(302, "/to"))
    response = session.get(upstream.url + "/from", allow_redirects=False)
    assert response.status_code == 302
    assert response.is_redirect
    assert response.next is not None
    assert response.next.url == upstream.url + "/to"
    assert upstream.count("/to") == 0


def test_too_many_redirects(session: requests.Session, upstream: Upstream) -> None:
    upstream.script("/loop", _redirect(302, "/loop"))
    session.max_redirects = 3
    with pytest.raises(requests.TooManyRedirects):
        session.get(upstream.url + "/loop")
    assert upstream.count("/loop") == 4


def test_cookies_persist_across_calls(session: requests.Session, upstream: Upstream) -> None:
    upstream.script("/login", Reply(200, b"{}", headers={"Set-Cookie": "sid=abc; Path=/"}))
    upstream.script("/me", Reply(200))
    session.get(upstream.url + "/login")
    session.get(upstream.url + "/me", cookies={"extra": "1"})
    assert session.cookies.get("sid") == "abc"
    sent = upstream.calls["/me"][0].headers["Cookie"]
    assert "sid=abc" in sent
    assert "extra=1" in sent
    assert "extra" not in session.cookies


def test_session_and_request_hooks(session: requests.Session, upstream: Upstream) -> None:
    seen: list[str] = []
    upstream.script("/x", Reply(200))
    session.hooks["response"].append(lambda r, *a, **k: seen.append("session"))
    session.get(upstream.url + "/x")
    # requests' merge_hooks: a request's own "response" hooks replace the session's.
    session.get(upstream.url + "/x", hooks={"response": lambda r, *a, **k: seen.append("request")})
    assert seen == ["session", "request"]
    assert len(session.hooks["response"]) == 1


def test_hook_can_replace_the_response(session: requests.Session, upstream: Upstream) -> None:
    upstream.script("/x", Reply(200))
    replacement = requests.Response()
    replacement.status_code = 299
    replacement._content = b"replaced"
    response = session.get(upstream.url + "/x", hooks={"response": lambda r, *a, **k: replacement})
    assert response is replacement


def test_streaming(session: requests.Session, upstream: Upstream) -> None:
    body = b"".join(b"line %d\n" % i for i in range(2000))
    upstream.script("/big", Reply(200, body, headers={"Content-Type": "text/plain"}))
    with session.get(upstream.url + "/big", stream=True) as response:
        assert response._content_consumed is False  # type: ignore[attr-defined]
        lines = list(response.iter_lines())
    assert len(lines) == 2000
    assert lines[0] == b"line 0"


def test_raw_stream_read(session: requests.Session, upstream: Upstream) -> None:
    upstream.script("/raw", Reply(200, b"0123456789"))
    response = session.get(upstream.url + "/raw", stream=True)
    assert response.raw.read(4) == b"0123"
    assert response.raw.read() == b"456789"
    response.close()


def test_headers_and_params_merge(session: requests.Session, upstream: Upstream) -> None:
    upstream.script("/q", Reply(200))
    session.headers["X-Team"] = "core"
    session.params = {"a": "1"}
    session.get(upstream.url + "/q", params={"b": "2"}, headers={"X-Call": "yes"})
    call = upstream.calls["/q"][0]
    assert call.path == "/q?a=1&b=2"
    assert call.headers["X-Team"] == "core"
    assert call.headers["X-Call"] == "yes"


def test_context_manager_closes_adapters(session: requests.Session, upstream: Upstream) -> None:
    upstream.script("/x", Reply(200))
    with session as s:
        assert s is session
        s.get(upstream.url + "/x")
    adapter = session.get_adapter(upstream.url)
    assert isinstance(adapter, HTTPAdapter)
    assert len(adapter.poolmanager.pools) == 0


def test_pickled_session_still_works(session: requests.Session, upstream: Upstream) -> None:
    upstream.script("/x", Reply(200, headers={"Set-Cookie": "k=v"}))
    session.get(upstream.url + "/x")
    copy = pickle.loads(pickle.dumps(session))
    assert type(copy) is type(session)
    assert copy.cookies.get("k") == "v"
    assert copy.get(upstream.url + "/x").status_code == 200
    assert type(copy.get_adapter(upstream.url)) is type(session.get_adapter(upstream.url))


def test_pickled_resilient_session_keeps_its_options(upstream: Upstream) -> None:
    session = ResilientSession(base_url=upstream.url, timeout=4, deadline=9, retry=2, raise_for_status=True)
    copy = pickle.loads(pickle.dumps(session))
    assert (copy.base_url, copy.timeout, copy.deadline, copy.raise_for_status) == (upstream.url, 4, 9, True)
    assert copy.adapters["http://"].max_retries.total == 2


def test_mount_longest_prefix_wins(session: requests.Session) -> None:
    special = ResilientAdapter(retry=9)
    session.mount("http://127.0.0.1", special)
    assert session.get_adapter("http://127.0.0.1:9/x") is special
    assert session.get_adapter("https://127.0.0.1/x") is session.adapters["https://"]
    assert next(iter(session.adapters)) == "http://127.0.0.1"  # kept sorted longest-first, as requests does


def test_json_and_text(session: requests.Session, upstream: Upstream) -> None:
    upstream.script(
        "/j", Reply(200, '{"name": "Zoë"}'.encode(), headers={"Content-Type": "application/json"})
    )
    response = session.get(upstream.url + "/j")
    assert response.json() == {"name": "Zoë"}
    assert response.ok
    assert response.elapsed.total_seconds() >= 0


def test_http_proxy(session: requests.Session, upstream: Upstream) -> None:
    target = "http://127.0.0.1:9/through-proxy"
    upstream.script(target, Reply(200, b'{"proxied": true}'))
    response = session.get(target, proxies={"http": upstream.url})
    assert response.json() == {"proxied": True}
    assert upstream.calls[target][0].path == target


def test_head_and_delete(session: requests.Session, upstream: Upstream) -> None:
    upstream.script("/r", Reply(200, b"body"))
    assert session.head(upstream.url + "/r").content == b""
    assert session.delete(upstream.url + "/r").status_code == 200
    assert [c.method for c in upstream.calls["/r"]] == ["HEAD", "DELETE"]
