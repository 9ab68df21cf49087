"""Subclasses of requests.Session combined with ours keep what they set (docs/migrating.md), on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests_toolbelt.sessions import BaseUrlSession

from resilient_session import ResilientSession

from .rawserver import RawServer, answer, drip_headers


@pytest.fixture
def server() -> Iterator[RawServer]:
    with RawServer([answer()]) as running:
        yield running


# -- requests-toolbelt's BaseUrlSession ------------------------------------------------------------------


class ToolbeltFirst(BaseUrlSession, ResilientSession):  # type: ignore[misc]
    pass


class OursFirst(ResilientSession, BaseUrlSession):  # type: ignore[misc]
    pass


RELATIVE = ["users", "/users", "users?page=2", "../other", ""]


def _paths(session: requests.Session, server: RawServer, urls: list[str]) -> list[str]:
    server.script(answer())
    for url in urls:
        assert session.get(url).status_code == 200
    return [f"{r.method} {r.path}" for r in server.received]


@pytest.mark.parametrize("cls", [ToolbeltFirst, OursFirst])
def test_base_url_session_keeps_its_base_url_and_joins_as_toolbelt(
    cls: type[requests.Session], server: RawServer
) -> None:
    base = server.url + "/api/v1/"
    combined = cls(base_url=base)  # type: ignore[call-arg]
    assert combined.base_url == base  # type: ignore[attr-defined]  # lost to None before
    alone = BaseUrlSession(base_url=base)

    expected = _paths(alone, server, RELATIVE)
    assert expected == [
        "GET /api/v1/users",
        "GET /users",
        "GET /api/v1/users?page=2",
        "GET /api/other",
        "GET /api/v1/",
    ]
    assert _paths(combined, server, RELATIVE) == expected
    # Absolute URLs go where they say, as with toolbelt alone.
    assert _paths(combined, server, [server.url + "/elsewhere"]) == ["GET /elsewhere"]


@pytest.mark.parametrize("cls", [ToolbeltFirst, OursFirst])
def test_base_url_session_prepare_request_joins_as_toolbelt(
    cls: type[requests.Session], server: RawServer
) -> None:
    base = server.url + "/api/v1/"
    combined = cls(base_url=base)  # type: ignore[call-arg]
    alone = BaseUrlSession(base_url=base)
    for url in RELATIVE:
        ours = combined.prepare_request(requests.Request("GET", url)).url
        theirs = alone.prepare_request(requests.Request("GET", url)).url
        assert ours == theirs
    server.script(answer())
    combined.send(combined.prepare_request(requests.Request("GET", "/users")))
    assert [r.path for r in server.received] == ["/users"]


@pytest.mark.parametrize("cls", [ToolbeltFirst, OursFirst])
def test_base_url_session_still_gets_our_framework(cls: type[requests.Session], server: RawServer) -> None:
    # Our adapters are mounted and our request id reaches the wire, whichever class comes first.
    combined = cls(base_url=server.url + "/")  # type: ignore[call-arg]
    assert isinstance(combined, ResilientSession)
    server.script(answer())
    combined.get("ping")
    assert server.received[0].headers["x-request-id"]
    assert combined.adapters["http://"].__class__.__name__ == "ResilientAdapter"


# -- timeouts a legacy subclass declares ----------------------------------------------------------------


class ClassTimeout(ResilientSession):
    timeout = 0.5  # read by our default timeout, as `timeout = 10` is in legacy code


class PassesItOn(ResilientSession):
    timeout = 0.5

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)  # the legacy shape: its own request() passes it
        return super().request(method, url, *args, **kwargs)


class SetsItFirst(ResilientSession):
    def __init__(self, **kwargs: Any) -> None:
        self.timeout = 0.5
        super().__init__(**kwargs)


@pytest.mark.parametrize("cls", [ClassTimeout, PassesItOn, SetsItFirst])
def test_a_subclass_timeout_is_the_one_applied(cls: type[ResilientSession], server: RawServer) -> None:
    # Headers drip every 2 s: ours (30 s read) would keep waiting, the subclass's 0.5 s gives up.
    server.script(drip_headers(2.0))
    session = cls(retry=False)
    assert session.timeout == 0.5
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        session.get(server.url + "/slow")
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 1.8
    assert server.count == 1


def test_a_timeout_passed_to_the_constructor_beats_the_class_one(server: RawServer) -> None:
    server.script(drip_headers(2.0))
    session = ClassTimeout(timeout=(1, 0.2), retry=False)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        session.get(server.url + "/slow")
    assert time.monotonic() - started < 0.45


def test_our_default_applies_when_the_subclass_sets_nothing(server: RawServer) -> None:
    # The control: a server answering after 1 s is waited for by our default (30 s read) ...
    def late(conn: Any, received: Any) -> bool:
        conn.wait(1.0)
        return answer()(conn, received)

    server.script(late)

    class Plain(ResilientSession):
        pass

    assert Plain().get(server.url + "/late").status_code == 200
    # ... and not by the subclass declaring 0.5 s.
    server.script(late)
    with pytest.raises(requests.ReadTimeout):
        ClassTimeout(retry=False).get(server.url + "/late")
