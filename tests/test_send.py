"""requests' ``Session.send`` mirrored (``resilient_session._send``) answers as requests' own method does.

Every scenario runs twice against the same loopback upstream: once through the mirror, once with the
session calling requests' ``Session.send`` itself; the outcomes (responses, redirect history, cookies in
the session's jar, ``response.next``, and what the upstream received) must be equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
import requests.sessions

from resilient_session import ResilientSession, _send, install, uninstall
from tests.integration.upstream import Reply, Upstream


def _outcome(response: requests.Response, session: requests.Session) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "url": response.url,
        "content": response.content,
        "history": [(r.status_code, r.url, sorted(r.cookies.items())) for r in response.history],
        "cookies": sorted(response.cookies.items()),
        "session cookies": sorted((c.name, c.value, c.path) for c in session.cookies),
        "next": response.next.url if response.next is not None else None,
        "elapsed is set": response.elapsed.total_seconds() > 0,
        "tagged": getattr(response, "tagged", None),
        "consumed": response._content_consumed,  # type: ignore[attr-defined]
    }


def _scenarios(upstream: Upstream) -> dict[str, Callable[[requests.Session], requests.Response]]:
    upstream.script("/plain", Reply(200, b'{"a": 1}'))
    upstream.script(
        "/cookie",
        Reply(200, b"{}", headers={"Content-Type": "application/json", "Set-Cookie": "sid=1; Path=/"}),
    )
    upstream.script(
        "/hop",
        Reply(302, b"", headers={"Location": "/plain", "Set-Cookie": "hop=2; Path=/", "Content-Length": "0"}),
    )
    upstream.script("/twice", Reply(301, b"", headers={"Location": "/hop", "Content-Length": "0"}))

    def tag(response: requests.Response, **kwargs: Any) -> requests.Response:
        response.tagged = kwargs.get("timeout") is not None  # type: ignore[attr-defined]
        return response

    base = upstream.url
    return {
        "plain": lambda s: s.get(base + "/plain"),
        "cookie": lambda s: s.get(base + "/cookie"),
        "redirects": lambda s: s.get(base + "/twice"),
        "no redirects": lambda s: s.get(base + "/hop", allow_redirects=False),
        "no redirects, no redirect": lambda s: s.get(base + "/plain", allow_redirects=False),
        "stream": lambda s: s.get(base + "/plain", stream=True),
        "hook": lambda s: s.get(base + "/plain", hooks={"response": [tag]}),
        "hook on redirect": lambda s: s.get(base + "/hop", hooks={"response": tag}),
        "head": lambda s: s.head(base + "/cookie"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "plain",
        "cookie",
        "redirects",
        "no redirects",
        "no redirects, no redirect",
        "stream",
        "hook",
        "hook on redirect",
        "head",
    ],
)
def test_the_mirror_answers_as_requests(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = []
    received = []
    with Upstream() as upstream:
        for mirrored in (True, False):
            scenario = _scenarios(upstream)[name]  # scripted afresh: the counts start at zero
            session = ResilientSession(request_id_header=None)
            used: list[bool] = []
            real = _send.send

            def recording(*args: Any, used: list[bool] = used, real: Any = real, **kwargs: Any) -> Any:
                used.append(True)
                return real(*args, **kwargs)

            monkeypatch.setattr(_send, "send", recording)
            if not mirrored:
                monkeypatch.setattr(_send, "mirrors_now", lambda session: False)
            outcomes.append(_outcome(scenario(session), session))
            received.append({path: upstream.count(path) for path in ("/plain", "/cookie", "/hop", "/twice")})
            assert bool(used) is mirrored
            monkeypatch.undo()
    assert outcomes[0] == outcomes[1]
    assert received[0] == received[1]


def test_the_mirror_is_not_used_where_it_would_bypass_something() -> None:
    session = ResilientSession()
    assert _send.mirrors_now(session)

    class OwnRedirects(ResilientSession):
        def get_redirect_target(self, resp: requests.Response) -> str | None:
            return None

    assert not _send.mirrors_now(OwnRedirects())

    install()  # wraps requests' own Session.send: every session must go through it
    try:
        assert not _send.mirrors_now(session)
    finally:
        uninstall()
    assert _send.mirrors_now(session)


def test_a_patched_helper_of_requests_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = requests.sessions.extract_cookies_to_jar

    def extract(jar: Any, request: Any, response: Any) -> None:
        seen.append(request.url)
        original(jar, request, response)

    monkeypatch.setattr(requests.sessions, "extract_cookies_to_jar", extract)
    with Upstream() as upstream:
        url = upstream.script("/plain", Reply(200, b"{}"))
        ResilientSession().get(url)
    assert seen == [url]


def test_an_instrumented_session_send_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    # As OpenTelemetry's or ddtrace's requests instrumentation wraps it.
    spans: list[str] = []
    original = requests.Session.send

    def instrumented(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        spans.append(str(request.method))
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", instrumented)
    with Upstream() as upstream:
        url = upstream.script("/plain", Reply(200, b"{}"))
        assert ResilientSession().get(url).status_code == 200
    assert spans == ["GET"]


def test_a_mixin_after_the_session_overriding_send_is_called() -> None:
    sent: list[str] = []

    class Recording(requests.Session):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            sent.append(str(request.url))
            return super().send(request, **kwargs)

    class Session(ResilientSession, Recording):
        pass

    with Upstream() as upstream:
        url = upstream.script("/plain", Reply(200, b"{}"))
        assert Session().get(url).status_code == 200
        assert upstream.count("/plain") == 1
    assert sent == [url]
