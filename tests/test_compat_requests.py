"""resilient_session._compat.requests: requests' own Session, whatever replaced ``requests.Session``, and
each internal of requests the package relies on, checked against the installed requests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from resilient_session._compat.requests import OriginalSession, original_session_class


def test_the_original_session_class_is_requests_own() -> None:
    assert OriginalSession is original_session_class() is requests.sessions.Session
    assert OriginalSession.__module__ == "requests.sessions"


def test_importing_after_install_cache_does_not_bake_the_cache_in(tmp_path: object) -> None:
    """requests_cache.install_cache() before the import: ResilientSession still derives from requests'
    own Session, takes its own keywords, and does not cache unless asked to."""
    script = textwrap.dedent(
        """
        import requests, requests_cache
        requests_cache.install_cache(backend="memory")
        from resilient_session import ResilientSession
        from resilient_session._compat.requests import OriginalSession
        assert requests.Session is not OriginalSession
        assert OriginalSession.__module__ == "requests.sessions"
        assert not issubclass(ResilientSession, requests_cache.CacheMixin), ResilientSession.__mro__
        session = ResilientSession(base_url="http://127.0.0.1:9", timeout=1)
        assert session.timeout == 1 and not hasattr(session, "cache")
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


# -- prepared requests and responses -------------------------------------------------------------------


def test_body_position_is_an_int_only_for_a_body_requests_can_rewind(tmp_path: Path) -> None:
    from resilient_session._compat.requests import body_position

    path = tmp_path / "body"
    path.write_bytes(b"0123456789")
    with path.open("rb") as body:
        body.seek(3)
        prepared = requests.Request("POST", "http://127.0.0.1/", data=body).prepare()
        assert body_position(prepared) == 3
    generated = requests.Request("POST", "http://127.0.0.1/", data=iter([b"a"])).prepare()
    assert body_position(generated) is None
    assert body_position(requests.Request("GET", "http://127.0.0.1/").prepare()) is None


def test_the_cookie_jar_is_the_one_prepare_cookies_was_given() -> None:
    from resilient_session._compat.requests import request_cookie_jar

    assert request_cookie_jar(requests.PreparedRequest()) is None
    jar = requests.cookies.cookiejar_from_dict({"a": "1"})
    prepared = requests.Request("GET", "http://127.0.0.1/", cookies=jar).prepare()
    found = request_cookie_jar(prepared)
    assert found is not None and {c.name: c.value for c in found} == {"a": "1"}
    assert prepared.headers["Cookie"] == "a=1"


def _unread(body: bytes) -> requests.Response:
    import io

    from urllib3 import HTTPResponse

    response = requests.Response()
    response.status_code = 200
    response.raw = HTTPResponse(io.BytesIO(body), preload_content=False)
    return response


def test_marking_a_body_consumed_is_what_response_content_sees() -> None:
    from resilient_session._compat.requests import cached_content, content_consumed, mark_consumed

    kept = _unread(b"abc")
    assert not content_consumed(kept) and cached_content(kept) is False
    mark_consumed(kept, b"kept")
    assert content_consumed(kept) and cached_content(kept) == b"kept"
    assert kept.content == b"kept"  # requests' own property returns what was recorded

    dropped = _unread(b"abc")
    mark_consumed(dropped)
    with pytest.raises(RuntimeError, match="already consumed"):
        dropped.content  # noqa: B018

    read = _unread(b"xyz")
    assert read.content == b"xyz"
    assert content_consumed(read) and cached_content(read) == b"xyz"


# -- requests' undocumented helpers --------------------------------------------------------------------


def test_the_helpers_are_the_ones_requests_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from resilient_session._compat import requests as compat

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = "http://127.0.0.1:8080/x"
    assert compat.environ_proxies(url, None) == requests.utils.get_environ_proxies(url)
    assert compat.environ_proxies(url, "127.0.0.1") == {}
    assert compat.merge_setting({"a": 1}, {"a": 2, "b": 3}) == {"a": 1, "b": 3}
    assert tuple(requests.utils.NETRC_FILES) == compat.NETRC_FILES
    names = compat.prepare_request_names()
    assert names is not None and {"merge_setting", "merge_hooks", "get_netrc_auth"} <= names


@pytest.mark.parametrize(
    ("module", "name", "check"),
    [
        ("requests.sessions", "merge_setting", "environment_helpers_replaced"),
        ("requests.sessions", "get_environ_proxies", "environment_helpers_replaced"),
        ("requests.utils", "should_bypass_proxies", "environment_helpers_replaced"),
        ("requests.utils", "getproxies", "environment_helpers_replaced"),
        ("requests.utils", "proxy_bypass", "environment_helpers_replaced"),
        ("requests.sessions", "merge_setting", "prepare_helpers_replaced"),
        ("requests.sessions", "merge_hooks", "prepare_helpers_replaced"),
        ("requests.sessions", "get_netrc_auth", "netrc_helpers_replaced"),
        ("netrc", "netrc", "netrc_helpers_replaced"),
    ],
)
def test_a_replaced_helper_is_noticed(
    monkeypatch: pytest.MonkeyPatch, module: str, name: str, check: str
) -> None:
    import importlib

    from resilient_session._compat import requests as compat

    replaced = getattr(compat, check)
    assert not replaced()
    monkeypatch.setattr(importlib.import_module(module), name, lambda *args, **kwargs: None)
    assert replaced()
    monkeypatch.undo()
    assert not replaced()
