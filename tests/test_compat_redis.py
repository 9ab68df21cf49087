"""resilient_session._compat.redis: each internal of redis-py the package relies on, checked against the
installed redis-py."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from resilient_session._compat.redis import SocketHook, connection_settings, connections_with  # noqa: E402


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
