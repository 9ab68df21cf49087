"""How a :class:`~resilient_session.ResilientSession` sends through an adapter that is not its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.utils import select_proxy

from ._attempts import TimeoutArg, guarded_send
from ._instrument import instrument_pools

__all__ = ["MountedAdapter"]


class MountedAdapter(BaseAdapter):
    """How a :class:`~resilient_session.ResilientSession` sends through an adapter that is not a
    :class:`~resilient_session.ResilientAdapter` (one legacy code mounted): a wrapper for the length of
    one send.

    Through an ``HTTPAdapter`` (or a subclass, whatever it overrides) a call gets what it gets through
    a ``ResilientAdapter``, except that a ``max_retries`` the adapter was given decides what is retried
    (one left at requests' default is the session's, see :meth:`ResilientSession.mount`): the
    deadline reaches every attempt, the breaker, budget and bulkhead are the session's, failures are
    typed. Through any other adapter it gets what needs no socket of ours: the default timeout as
    ``timeout=``, the breaker, budget and bulkhead, the deadline checked before sending, typed errors.
    """

    def __init__(self, adapter: BaseAdapter) -> None:
        super().__init__()
        self.adapter = adapter

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: TimeoutArg = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        adapter = self.adapter
        if isinstance(adapter, HTTPAdapter):
            _instrument(adapter, request, proxies)
        return guarded_send(adapter, adapter.send, request, stream, timeout, verify, cert, proxies)

    def close(self) -> None:
        self.adapter.close()


def _instrument(
    adapter: HTTPAdapter, request: requests.PreparedRequest, proxies: Mapping[str, str] | None
) -> None:
    """Make the pools *adapter* will use for *request* deadline-aware, before it sends."""
    manager = getattr(adapter, "poolmanager", None)
    if manager is not None:
        instrument_pools(manager)
    proxy = select_proxy(request.url or "", dict(proxies or {}))
    if proxy:
        # proxy_manager_for() creates and caches the manager send() is about to use.
        instrument_pools(adapter.proxy_manager_for(proxy))
