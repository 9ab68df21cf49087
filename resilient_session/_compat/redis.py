"""What the package needs from redis-py beyond its documented API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .classes import with_mixin

__all__ = [
    "SocketHook",
    "async_client_from_url",
    "async_client_like",
    "close_async_client",
    "connection_settings",
    "connections_with",
]


async def close_async_client(client: Any) -> None:
    """Close a ``redis.asyncio`` client: ``aclose()`` since redis-py 5.0.1, ``close()`` in 5.0.0 (the
    oldest version this package supports), where ``aclose`` does not exist yet."""
    close = getattr(client, "aclose", None) or client.close
    await close()


def connection_settings(client: Any) -> Mapping[str, Any]:
    """The keyword arguments *client*'s pool gives each connection (``host``, ``port``, ``db``, ``path``
    ...), empty when there is no pool.

    Stands in for a public "where does this client connect" that redis-py does not have: it reads the
    pool's ``connection_kwargs`` attribute (what ``ConnectionPool(**kwargs)`` was given).
    """
    settings: Mapping[str, Any] = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    return settings


def connections_with(client: Any, mixin: type[Any]) -> None:
    """Make the connections *client*'s pool opens from now on have *mixin* first in their MRO.

    Stands in for ``ConnectionPool(connection_class=...)`` on a pool that already exists (the client a
    user built): the pool's ``connection_class`` attribute is replaced. A client without one is left alone.
    """
    pool: Any = getattr(client, "connection_pool", None)
    cls = getattr(pool, "connection_class", None)
    if cls is not None:
        pool.connection_class = with_mixin(mixin, cls)


class SocketHook:
    """redis-py connection mixin: ``open_socket(open_)`` opens every socket of the connection, where
    *open_* is redis-py's own way (connect, TLS handshake) and returns the socket to use.

    Stands in for a connect hook redis-py does not offer: it overrides the connection's private
    ``_connect``, which ``connect()`` calls and whose result becomes the connection's socket.
    """

    def open_socket(self, open_: Callable[[], Any]) -> Any:
        """The socket for the connection: *open_*'s, by default."""
        return open_()

    def _connect(self) -> Any:
        return self.open_socket(super()._connect)  # type: ignore[misc]


# Settings of a sync connection that a redis.asyncio connection does not take, or takes as other objects.
_SYNC_ONLY = frozenset({"retry", "connection_class", "socket_read_size", "ssl_check_hostname_callback"})


def async_client_from_url(url: str, settings: Mapping[str, Any]) -> Any:
    """A ``redis.asyncio.Redis`` for *url* with *settings*, and no retries of its own."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **settings)


def async_client_like(client: Any) -> Any:
    """A ``redis.asyncio.Redis`` connecting where the sync *client* connects, with its settings
    (address, database, credentials, timeouts, TLS), and no retries of its own.

    Stands in for a public "the same client, for asyncio" that redis-py does not have: it reads the
    sync pool's ``connection_kwargs`` (see :func:`connection_settings`) and picks the asyncio
    connection class matching the sync one (TCP, TLS or a Unix socket).
    """
    import redis
    import redis.asyncio
    import redis.asyncio.connection as aconnection
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    settings = {k: v for k, v in connection_settings(client).items() if k not in _SYNC_ONLY}
    cls: type[Any] = aconnection.Connection
    sync_cls = getattr(getattr(client, "connection_pool", None), "connection_class", None)
    if "path" in settings:
        cls = aconnection.UnixDomainSocketConnection
    elif isinstance(sync_cls, type) and issubclass(sync_cls, redis.SSLConnection):
        cls = aconnection.SSLConnection
    pool = redis.asyncio.ConnectionPool(connection_class=cls, retry=Retry(NoBackoff(), 0), **settings)
    return redis.asyncio.Redis(connection_pool=pool)
