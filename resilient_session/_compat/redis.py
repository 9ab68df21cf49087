"""What the package needs from redis-py beyond its documented API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .classes import with_mixin

__all__ = ["SocketHook", "connection_settings", "connections_with"]


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
