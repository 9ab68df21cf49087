"""Fixtures shared by every test module: a scriptable loopback server and a refused port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.integration.upstream import Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A real HTTP server on 127.0.0.1 whose answers each test scripts."""
    with Upstream() as server:
        yield server


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    return free_port()
