"""The adapter's remembered look-ups answer as requests' own ``HTTPAdapter`` methods do.

Each case asks ``ResilientAdapter`` and requests' ``HTTPAdapter`` method (on the same adapter) for the
connection pool and the request line; they must agree, call after call, as the pool manager, the
``verify`` path on disk and the adapter's subclass change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util import Timeout

from resilient_session import ResilientAdapter, ResilientSession
from resilient_session._compat.requests import OriginalSession
from tests.integration.upstream import Reply, Upstream


def _prepared(url: str) -> requests.PreparedRequest:
    return OriginalSession().prepare_request(requests.Request("GET", url))


def _requests_pool(adapter: HTTPAdapter, request: requests.PreparedRequest, verify: Any, cert: Any) -> Any:
    return HTTPAdapter.get_connection_with_tls_context(adapter, request, verify, proxies={}, cert=cert)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a?b=1", "https://LOCALHOST:9443/x", "http://[::1]:9/"])
@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("cert", [None, "/tmp/client.pem", ("/tmp/c.pem", "/tmp/k.pem")])
def test_the_pool_is_the_one_requests_finds(url: str, verify: bool, cert: Any) -> None:
    adapter = ResilientAdapter()
    request = _prepared(url)
    for _ in range(3):  # the first call fills the memo, the next ones read it
        ours = adapter.get_connection_with_tls_context(request, verify, proxies={}, cert=cert)
        assert ours is _requests_pool(adapter, request, verify, cert)
    assert adapter.request_url(request, {}) == HTTPAdapter.request_url(adapter, request, {})


def test_a_verify_path_is_asked_of_the_file_system_each_call(tmp_path: Path) -> None:
    adapter = ResilientAdapter()
    request = _prepared("https://127.0.0.1:9443/")
    bundle = tmp_path / "ca"
    bundle.write_text("not read here")
    as_file = adapter.get_connection_with_tls_context(request, str(bundle), proxies={})
    assert as_file.ca_certs == str(bundle) and as_file is _requests_pool(adapter, request, str(bundle), None)
    bundle.unlink()
    bundle.mkdir()  # the same path is now a directory: requests' pool key changes, so does ours
    as_dir = adapter.get_connection_with_tls_context(request, str(bundle), proxies={})
    assert as_dir is not as_file
    assert as_dir.ca_cert_dir == str(bundle)
    assert as_dir is _requests_pool(adapter, request, str(bundle), None)


def test_a_closed_adapter_gets_new_pools() -> None:
    with Upstream() as upstream:
        url = upstream.script("/a", Reply(200, b"{}"))
        session = ResilientSession()
        assert session.get(url).status_code == 200
        adapter = session.get_adapter(url)
        assert isinstance(adapter, ResilientAdapter)
        request = _prepared(url)
        before = adapter.get_connection_with_tls_context(request, True, proxies={})
        session.close()  # requests clears the pool manager; its pools are closed
        after = adapter.get_connection_with_tls_context(request, True, proxies={})
        assert after is not before
        assert after is _requests_pool(adapter, request, True, None)
        assert session.get(url).status_code == 200
        assert upstream.count("/a") == 2


def test_a_new_pool_manager_starts_a_new_memo() -> None:
    adapter = ResilientAdapter()
    request = _prepared("http://127.0.0.1:9/")
    first = adapter.get_connection_with_tls_context(request, True, proxies={})
    adapter.init_poolmanager(10, 10)
    second = adapter.get_connection_with_tls_context(request, True, proxies={})
    assert second is not first
    assert second is _requests_pool(adapter, request, True, None)


def test_proxies_and_overridden_key_attributes_run_requests_methods() -> None:
    calls: list[str] = []

    class Pinned(ResilientAdapter):
        def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
            calls.append(request.url)
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
            return host_params, {**pool_kwargs, "cert_reqs": "CERT_NONE"}

    adapter = Pinned()
    request = _prepared("https://127.0.0.1:9443/")
    for _ in range(2):
        assert adapter.get_connection_with_tls_context(request, True, proxies={}).cert_reqs == "CERT_NONE"
    assert len(calls) == 2

    plain = ResilientAdapter()
    proxies = {"http": "http://127.0.0.1:3128"}
    request = _prepared("http://127.0.0.1:9/x?y=1")
    via_proxy = plain.get_connection_with_tls_context(request, True, proxies=proxies)
    assert via_proxy is HTTPAdapter.get_connection_with_tls_context(plain, request, True, proxies=proxies)
    assert via_proxy.proxy is not None  # type: ignore[attr-defined]
    assert plain.request_url(request, proxies) == "http://127.0.0.1:9/x?y=1"  # absolute form, as requests


def test_the_pool_gets_the_timeout_requests_would_build(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    original = HTTPConnectionPool.urlopen

    def urlopen(self: HTTPConnectionPool, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["timeout"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HTTPConnectionPool, "urlopen", urlopen)
    with Upstream() as upstream:
        url = upstream.script("/t", Reply(200, b"{}"))
        session = ResilientSession(timeout=(2, 7.5))
        session.get(url)
        session.get(url, timeout=(1, 3))
        assert upstream.count("/t") == 2
    assert [type(t) for t in seen] == [Timeout, Timeout]
    assert [(t.connect_timeout, t.read_timeout) for t in seen] == [(2, 7.5), (1, 3)]
    assert [str(t) for t in seen] == [str(Timeout(connect=2, read=7.5)), str(Timeout(connect=1, read=3))]


@responses.activate
def test_responses_still_records_the_timeout_pair() -> None:
    responses.get("http://127.0.0.1:9/x", json={})
    ResilientSession().get("http://127.0.0.1:9/x")
    sent = responses.calls[0].request
    assert sent.req_kwargs["timeout"] == (3.05, 30.0)  # type: ignore[attr-defined]


def test_a_change_to_the_pool_managers_settings_is_seen() -> None:
    adapter = ResilientAdapter()
    request = _prepared("http://127.0.0.1:9/")
    before = adapter.get_connection_with_tls_context(request, True, proxies={})
    adapter.poolmanager.connection_pool_kw["maxsize"] = 3  # as a subclass's init_poolmanager might
    after = adapter.get_connection_with_tls_context(request, True, proxies={})
    assert after is not before
    assert after is _requests_pool(adapter, request, True, None)
    assert after.pool.maxsize == 3


def test_wrapped_methods_of_requests_are_called(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    get_connection = HTTPAdapter.get_connection_with_tls_context
    request_url = HTTPAdapter.request_url

    def wrapped_connection(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append("connection")
        return get_connection(self, request, *args, **kwargs)

    def wrapped_url(self: HTTPAdapter, request: Any, proxies: Any) -> str:
        seen.append("url")
        return request_url(self, request, proxies)

    monkeypatch.setattr(HTTPAdapter, "get_connection_with_tls_context", wrapped_connection)
    monkeypatch.setattr(HTTPAdapter, "request_url", wrapped_url)
    with Upstream() as upstream:
        url = upstream.script("/w", Reply(200, b"{}"))
        for _ in range(2):
            assert ResilientSession().get(url).status_code == 200
    assert seen == ["connection", "url"] * 2


def test_a_timeout_requests_refuses_is_refused_as_requests_refuses_it() -> None:
    with Upstream() as upstream:
        url = upstream.script("/t", Reply(200, b"{}"))
        bad_timeouts: list[Any] = [(1, [2]), (1, 2, 3), ("a", 1)]
        for bad in bad_timeouts:
            with pytest.raises(ValueError) as ours:
                ResilientSession(retry=False).get(url, timeout=bad)
            with pytest.raises(ValueError) as theirs:
                requests.Session().get(url, timeout=bad)
            assert type(ours.value) is type(theirs.value)
        assert upstream.count("/t") == 0
