"""A guard for running other projects' test suites here: connections and name look-ups that would
leave the machine (anything but loopback) are refused, and which test tried is recorded.

Importing it installs the guard (a ``sys.addaudithook`` hook: it cannot be removed, so import it only in
the processes that run such a suite). Load it as a pytest plugin (``-p loopback_guard``) or import it
from another plugin; :data:`BLOCKED` lists what was refused, :data:`CURRENT` names the running test.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

import pytest

#: Every refused connection or look-up: ``{"nodeid", "event", "target"}``.
BLOCKED: list[dict[str, Any]] = []
#: The node id of the test running now (``[None]`` outside a test).
CURRENT: list[str | None] = [None]

# Names /etc/hosts answers on any machine; every other name would be sent to a DNS server.
_LOCAL_NAMES = frozenset({"localhost"})


def _is_loopback_host(host: Any) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): a local wildcard address
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%", 1)[0]
    if host == "" or host.lower().rstrip(".") in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name only DNS can answer
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _is_literal(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _refuse(event: str, target: Any) -> None:
    BLOCKED.append({"nodeid": CURRENT[0], "event": event, "target": repr(target)})
    if event == "socket.connect":
        raise OSError(101, f"refused by the loopback guard: {target!r} is not a loopback address")
    raise socket.gaierror(socket.EAI_NONAME, f"refused by the loopback guard: {target!r} is not local")


def _loopback_guard(event: str, args: tuple[Any, ...]) -> None:
    if not event.startswith("socket."):
        return
    if event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback_host(address[0]):
            _refuse(event, address)
    elif event == "socket.getaddrinfo":
        host = args[0]
        # A numeric address needs no look-up; connect() decides about it.
        if not _is_loopback_host(host) and not _is_literal(host):
            _refuse(event, host)
    elif event in ("socket.gethostbyname", "socket.gethostbyaddr"):
        if not _is_loopback_host(args[0]):
            _refuse(event, args[0])
    elif event == "socket.sendto":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback_host(address[0]):
            _refuse("socket.connect", address)


sys.addaudithook(_loopback_guard)


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    CURRENT[0] = nodeid


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if BLOCKED:
        terminalreporter.write_line(f"loopback guard refused {len(BLOCKED)} connection(s) or look-up(s):")
        for entry in BLOCKED[:20]:
            terminalreporter.write_line(f"  {entry['nodeid']}: {entry['event']} {entry['target']}")


_ = pytest  # the module is a pytest plugin
