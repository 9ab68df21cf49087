"""_pools and _instrument: deadline-aware pools are made once, with their own names, shown as urllib3's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from resilient_session import ResilientSession
from resilient_session._instrument import instrument_pools
from resilient_session._pools import (
    DeadlineAwareHTTPConnectionPool,
    DeadlineAwareHTTPSConnectionPool,
    DeadlineAwarePool,
)
from tests.integration.raw_server import raw_server


def test_a_pool_manager_makes_the_deadline_aware_twins_of_urllib3s_pools() -> None:
    manager = urllib3.PoolManager()
    instrument_pools(manager)
    assert manager.pool_classes_by_scheme == {
        "http": DeadlineAwareHTTPConnectionPool,
        "https": DeadlineAwareHTTPSConnectionPool,
    }
    pool = manager.connection_from_url("http://127.0.0.1:9/")
    assert type(pool) is DeadlineAwareHTTPConnectionPool
    assert isinstance(pool, HTTPConnectionPool)
    # urllib3 and requests put str(pool) in their messages: it reads as urllib3's own.
    assert (
        str(pool) == str(HTTPConnectionPool("127.0.0.1", 9)) == "HTTPConnectionPool(host='127.0.0.1', port=9)"
    )
    secure = manager.connection_from_url("https://127.0.0.1:9/")
    assert str(secure) == str(HTTPSConnectionPool("127.0.0.1", 9))
    manager.clear()


def test_instrumenting_twice_changes_nothing_and_makes_no_class() -> None:
    manager = urllib3.PoolManager()
    instrument_pools(manager)
    first = manager.pool_classes_by_scheme
    instrument_pools(manager)
    assert manager.pool_classes_by_scheme is first


def test_a_pool_class_of_another_library_keeps_its_behaviour() -> None:
    class Theirs(HTTPConnectionPool):
        pass

    manager = urllib3.PoolManager()
    manager.pool_classes_by_scheme = {"http": Theirs, "https": HTTPSConnectionPool}
    instrument_pools(manager)
    assert manager.pool_classes_by_scheme == {"http": Theirs, "https": DeadlineAwareHTTPSConnectionPool}


def test_socks_pools_have_deadline_aware_twins() -> None:
    pytest.importorskip("socks")
    from urllib3.contrib.socks import SOCKSHTTPConnectionPool, SOCKSProxyManager

    manager = SOCKSProxyManager("socks5://127.0.0.1:9")
    instrument_pools(manager)
    classes = manager.pool_classes_by_scheme
    assert all(issubclass(cls, DeadlineAwarePool) for cls in classes.values())
    assert issubclass(classes["http"], SOCKSHTTPConnectionPool)
    assert classes["http"].__name__ == "DeadlineAwareSOCKSHTTPConnectionPool"
    pool = manager.connection_from_url("http://127.0.0.1:9/")
    assert str(pool).startswith("SOCKSHTTPConnectionPool(host='127.0.0.1'")
    manager.clear()


# -- the bytes urllib3 sends ------------------------------------------------------------------------


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback server that records each request's bytes up to the end of its headers."""
    with raw_server() as (base, _, received):
        yield base, received


@pytest.mark.parametrize(
    ("session_headers", "headers"),
    [
        ({}, {}),
        ({"X-Team": "payments"}, {"x-team": "billing", "X-Other": "1"}),
        ({"Accept": None}, {"Accept-Encoding": None}),
        ({}, {"Host": "api.internal", "User-Agent": "legacy/1.0"}),
        ({}, {b"X-Bytes": b"v", "X-Str": b"bytes value"}),
        ({"Accept": "a"}, {b"accept": "b"}),  # a str and a bytes key both kept by requests
    ],
)
def test_the_server_receives_what_plain_requests_sends(
    recorder: tuple[str, list[bytes]], session_headers: dict[Any, Any], headers: dict[Any, Any]
) -> None:
    base, received = recorder
    for session in (requests.Session(), ResilientSession(request_id_header=None)):
        session.headers.update(session_headers)
        session.get(base + "/v1/items?q=1", headers=headers)
    assert len(received) == 2
    assert received[0] == received[1]
