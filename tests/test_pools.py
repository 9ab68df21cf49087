"""_pools and _instrument: deadline-aware pools are made once, with their own names, shown as urllib3's."""

from __future__ import annotations

import pytest
import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from resilient_session._instrument import instrument_pools
from resilient_session._pools import (
    DeadlineAwareHTTPConnectionPool,
    DeadlineAwareHTTPSConnectionPool,
    DeadlineAwarePool,
)


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
