"""Deadline-aware twins of urllib3's SOCKS pools; imported only when urllib3's SOCKS support is in use."""

from __future__ import annotations

from typing import Any

from urllib3.contrib.socks import SOCKSHTTPConnectionPool, SOCKSHTTPSConnectionPool

from ._pools import DeadlineAwarePool

__all__ = ["AWARE"]


class DeadlineAwareSOCKSHTTPConnectionPool(DeadlineAwarePool, SOCKSHTTPConnectionPool):  # type: ignore[misc]  # urlopen(*args, **kwargs) forwards
    """urllib3's ``SOCKSHTTPConnectionPool``, deadline-aware."""

    shown_as = "SOCKSHTTPConnectionPool"


class DeadlineAwareSOCKSHTTPSConnectionPool(DeadlineAwarePool, SOCKSHTTPSConnectionPool):  # type: ignore[misc]  # urlopen(*args, **kwargs) forwards
    """urllib3's ``SOCKSHTTPSConnectionPool``, deadline-aware."""

    shown_as = "SOCKSHTTPSConnectionPool"


#: urllib3's class name -> its deadline-aware twin.
AWARE: dict[str, type[Any]] = {
    "SOCKSHTTPConnectionPool": DeadlineAwareSOCKSHTTPConnectionPool,
    "SOCKSHTTPSConnectionPool": DeadlineAwareSOCKSHTTPSConnectionPool,
}
