"""Which pools a pool manager makes: the deadline-aware twins of urllib3's own (see ``_pools``)."""

from __future__ import annotations

import sys
from typing import Any

from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ._compat.urllib3 import replace_pool_classes
from ._pools import DeadlineAwareHTTPConnectionPool, DeadlineAwareHTTPSConnectionPool, DeadlineAwarePool

__all__ = ["instrument_pools"]


def _aware(cls: type[Any]) -> type[Any]:
    """The deadline-aware class standing in for *cls*; *cls* itself when there is none (a pool class
    of another library keeps its behaviour, and urllib3 applies the retry policy inside it)."""
    if issubclass(cls, DeadlineAwarePool):
        return cls
    if cls is HTTPConnectionPool:
        return DeadlineAwareHTTPConnectionPool
    if cls is HTTPSConnectionPool:
        return DeadlineAwareHTTPSConnectionPool
    socks = sys.modules.get("urllib3.contrib.socks")
    if socks is not None and cls in (socks.SOCKSHTTPConnectionPool, socks.SOCKSHTTPSConnectionPool):
        from . import _socks_pools

        return _socks_pools.AWARE[cls.__name__]
    return cls


def instrument_pools(manager: Any) -> None:
    """Make the pools *manager* (a urllib3 ``PoolManager``) creates from now on deadline-aware."""
    replace_pool_classes(manager, _aware)
