"""Fixtures for the real-server tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from .upstream import Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _integration_marker(request: pytest.FixtureRequest) -> None:
    request.node.add_marker(pytest.mark.integration)
