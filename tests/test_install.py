"""install()/uninstall(): what they change on requests' Session class, and what a call through a plain
session gets (``responses``; retries, timeouts and requests-cache against real servers are in
tests/integration/test_install_live.py)."""

from __future__ import annotations

import functools
import inspect
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from requests.adapters import BaseAdapter

import resilient_session
from resilient_session import CircuitBreaker, CircuitOpenError, ResilientSession, registry
from resilient_session._compat.requests import OriginalSession

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("send", "get_adapter")
REQUESTS_OWN = {name: OriginalSession.__dict__[name] for name in NAMES}
API = "https://api.example.test"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _is_requests_own() -> bool:
    return all(OriginalSession.__dict__[name] is REQUESTS_OWN[name] for name in NAMES)


NEVER_INSTALLED = """
import requests
from requests.sessions import Session

import resilient_session
from resilient_session import ResilientSession, registry

registry.register("billing", base_url="https://api.example.test")
ResilientSession(integration="billing").close()
ResilientSession().close()
requests.Session().close()
for name in ("send", "get_adapter"):
    function = Session.__dict__[name]
    assert function.__module__ == "requests.sessions", function
    assert function.__qualname__ == "Session." + name, function
    assert not hasattr(function, "__wrapped__"), function
assert requests.Session is Session
print("untouched")
"""


def test_nothing_changes_for_a_process_that_never_calls_install() -> None:
    result = subprocess.run(
        [sys.executable, "-c", NEVER_INSTALLED],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "untouched"


def test_uninstall_puts_back_the_very_function_objects() -> None:
    resilient_session.install()
    assert not any(OriginalSession.__dict__[name] is REQUESTS_OWN[name] for name in NAMES)
    assert requests.Session.__dict__.get("send") is OriginalSession.__dict__["send"]  # the class, not a copy
    resilient_session.uninstall()
    assert _is_requests_own()


def test_the_wrappers_look_like_requests_own_methods() -> None:
    resilient_session.install()
    for name in NAMES:
        wrapper = OriginalSession.__dict__[name]
        assert wrapper.__name__ == name and wrapper.__doc__ == REQUESTS_OWN[name].__doc__
        assert inspect.signature(wrapper) == inspect.signature(REQUESTS_OWN[name])


def test_another_librarys_wrapper_on_top_stays_and_ours_then_passes_through(
    mocked: responses.RequestsMock,
) -> None:
    """As OpenTelemetry's instrumentor does: wrap Session.send after us, unwrap later."""
    registry.register(
        "billing", base_url=API, retry=False, breaker=CircuitBreaker(consecutive_failures=1, open_wait=30)
    )
    mocked.get(API + "/x", status=503)
    resilient_session.install()
    ours = OriginalSession.__dict__["send"]
    seen: list[str] = []

    @functools.wraps(ours)
    def theirs(self: Any, request: Any, **kwargs: Any) -> Any:
        seen.append(request.url)
        return ours(self, request, **kwargs)

    OriginalSession.send = theirs  # type: ignore[method-assign]
    try:
        resilient_session.uninstall()
        assert OriginalSession.__dict__["send"] is theirs  # not torn off under them
        assert OriginalSession.__dict__["get_adapter"] is REQUESTS_OWN["get_adapter"]
        # Ours, left inside theirs, lets every call through: no circuit opens.
        assert [requests.get(API + "/x").status_code for _ in range(3)] == [503] * 3
        assert len(seen) == 3
        resilient_session.install()  # switched back on, not wrapped a second time
        assert OriginalSession.__dict__["send"] is theirs
        assert requests.get(API + "/x").status_code == 503
        with pytest.raises(CircuitOpenError):
            requests.get(API + "/x")
        resilient_session.uninstall()
    finally:
        OriginalSession.send = ours  # type: ignore[method-assign]  # their uninstrument()
    assert requests.get(API + "/x").status_code == 503  # ours, switched off, passes through
    resilient_session.install()
    resilient_session.uninstall()
    assert _is_requests_own()


def test_a_plain_session_shares_the_integrations_circuit_under_responses(
    mocked: responses.RequestsMock,
) -> None:
    registry.register(
        "billing", base_url=API + "/v1", breaker=CircuitBreaker(consecutive_failures=2, open_wait=30)
    )
    mocked.get(API + "/v1/charges", status=503)
    mocked.get(API + "/health", status=503)
    resilient_session.install()
    assert requests.get(API + "/v1/charges").status_code == 503
    assert ResilientSession(integration="billing", retry=False).get("/charges").status_code == 503
    with pytest.raises(CircuitOpenError):
        requests.get(API + "/v1/charges")
    # Outside the base path, on the same origin: not the integration's, left alone.
    assert [requests.get(API + "/health").status_code for _ in range(3)] == [503] * 3


def test_under_responses_a_plain_adapter_is_not_retried(mocked: responses.RequestsMock) -> None:
    """responses imitates retries from the adapter's own max_retries, which install() never changes;
    the integration's retry policy reaches a plain session on the wire only (see the live tests)."""
    registry.register("billing", base_url=API)
    mocked.get(API + "/x", status=503)
    resilient_session.install()
    assert requests.get(API + "/x").status_code == 503
    assert len(mocked.calls) == 1
    with ResilientSession(integration="billing") as session:  # its own adapter: responses retries it
        assert session.get("/x").status_code == 503
    assert len(mocked.calls) == 1 + 4


def test_an_installed_call_is_logged_with_its_integration(
    mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    registry.register("billing", base_url=API)
    mocked.get(API + "/x", status=200)
    resilient_session.install()
    with caplog.at_level(logging.INFO, logger="resilient_session"):
        requests.get(API + "/x?api_key=s3cr3t-value")
    records = [r for r in caplog.records if r.name == "resilient_session"]
    assert len(records) == 1
    assert "-> 200" in records[0].getMessage() and "s3cr3t-value" not in records[0].getMessage()
    assert getattr(records[0], "integration", None) == "billing"
    assert "X-Request-ID" not in mocked.calls[0].request.headers  # nothing added to the caller's request


class _Loopback(BaseAdapter):
    """An adapter for a scheme of its own (``memo://``): answers 200 and records the timeout it got."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[Any] = []

    def send(self, request: Any, stream: bool = False, timeout: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        self.timeouts.append(timeout)
        response = requests.Response()
        response.status_code, response.url, response.request = 200, request.url, request
        return response

    def close(self) -> None:
        pass


def test_every_origin_means_every_http_origin_not_a_scheme_of_its_own() -> None:
    session = requests.Session()
    adapter = _Loopback()
    session.mount("memo://", adapter)
    resilient_session.install(all_origins=True)
    assert session.get("memo://anything/x").status_code == 200
    assert adapter.timeouts == [None]  # as requests passes it: no default timeout, no policies


def test_a_session_of_ours_under_install_has_its_own_framework_once(mocked: responses.RequestsMock) -> None:
    mocked.get(API + "/x", status=503)
    resilient_session.install(all_origins=True)
    with ResilientSession(retry=1) as session:
        assert session.get(API + "/x").status_code == 503
    assert len(mocked.calls) == 2  # its own retry, not wrapped once more


def test_requests_mock_started_and_stopped_while_installed_leaves_it_working() -> None:
    """requests_mock patches send and get_adapter on the class; its mock answers, and everything is put
    back in order when both stop."""
    requests_mock = pytest.importorskip("requests_mock")
    registry.register("billing", base_url=API, retry=False)
    resilient_session.install()
    with requests_mock.Mocker() as mock:
        mock.get(API + "/x", status_code=503)
        assert [requests.get(API + "/x").status_code for _ in range(2)] == [503, 503]
        assert mock.call_count == 2
    resilient_session.uninstall()
    assert _is_requests_own()


def test_install_wraps_again_when_another_library_dropped_our_wrapper(mocked: responses.RequestsMock) -> None:
    registry.register(
        "billing", base_url=API, retry=False, breaker=CircuitBreaker(consecutive_failures=1, open_wait=30)
    )
    mocked.get(API + "/x", status=503)
    resilient_session.install()
    OriginalSession.send = REQUESTS_OWN["send"]  # type: ignore[method-assign]  # restored what it found
    resilient_session.install()
    assert OriginalSession.__dict__["send"] is not REQUESTS_OWN["send"]
    assert requests.get(API + "/x").status_code == 503
    with pytest.raises(CircuitOpenError):
        requests.get(API + "/x")
    resilient_session.uninstall()
    assert _is_requests_own()
