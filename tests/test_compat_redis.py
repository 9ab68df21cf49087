"""resilient_session._compat.redis: each internal of redis-py the package relies on, checked against the
installed redis-py."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from resilient_session._compat.redis import (  # noqa: E402
    SocketHook,
    async_client_from_url,
    async_client_like,
    close_async_client,
    connection_settings,
    connections_with,
)


def test_connection_settings_are_what_the_pool_gives_each_connection() -> None:
    client = redis.Redis.from_url("redis://:pw@127.0.0.1:6390/3")
    settings = connection_settings(client)
    assert (settings["host"], settings["port"], settings["db"]) == ("127.0.0.1", 6390, 3)
    unix = redis.Redis(unix_socket_path="/tmp/redis.sock")
    assert connection_settings(unix)["path"] == "/tmp/redis.sock"
    assert connection_settings(object()) == {}


class Recording(SocketHook):
    opened: list[str] = []

    def open_socket(self, open_: Callable[[], Any]) -> Any:
        type(self).opened.append("open")
        return open_()


def test_the_hook_opens_every_socket_of_the_pools_connections() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=0.2)
    Recording.opened = []
    connections_with(client, Recording)
    try:
        # The listener accepts (the kernel does) but never answers redis-py's handshake.
        with pytest.raises(redis.TimeoutError):
            client.ping()
        assert len(Recording.opened) >= 1  # one per connection attempt redis-py made (it retries)
        connection = client.connection_pool.make_connection()
        assert isinstance(connection, Recording) and isinstance(connection, redis.Connection)
    finally:
        client.close()
        listener.close()


def test_a_client_without_a_pool_is_left_alone() -> None:
    bare = object()
    connections_with(bare, Recording)
    assert not hasattr(bare, "connection_pool")


def test_an_async_client_like_a_sync_one_connects_where_it_does_with_its_settings() -> None:
    import redis.asyncio.connection as aconnection

    sync = redis.Redis(host="127.0.0.1", port=6391, db=2, password="pw", socket_timeout=0.25)
    twin = async_client_like(sync)
    kwargs = twin.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("127.0.0.1", 6391, 2, "pw")
    assert kwargs["socket_timeout"] == 0.25
    assert twin.connection_pool.connection_class is aconnection.Connection
    unix = async_client_like(redis.Redis(unix_socket_path="/tmp/redis.sock"))
    assert unix.connection_pool.connection_class is aconnection.UnixDomainSocketConnection
    assert unix.connection_pool.connection_kwargs["path"] == "/tmp/redis.sock"
    tls = async_client_like(redis.Redis(host="127.0.0.1", port=6392, ssl=True))
    assert tls.connection_pool.connection_class is aconnection.SSLConnection
    by_url = async_client_from_url("redis://127.0.0.1:6393/4", {"socket_timeout": 0.5})
    assert by_url.connection_pool.connection_kwargs["db"] == 4
    assert by_url.connection_pool.connection_kwargs["socket_timeout"] == 0.5


def test_an_async_client_is_closed_with_the_method_its_version_has() -> None:
    closed: list[str] = []

    class Old:  # redis-py 5.0.0: close() only
        async def close(self) -> None:
            closed.append("close")

    class New(Old):  # 5.0.1 and later: aclose(), close() deprecated
        async def aclose(self) -> None:
            closed.append("aclose")

    asyncio.run(close_async_client(Old()))
    asyncio.run(close_async_client(New()))
    assert closed == ["close", "aclose"]
