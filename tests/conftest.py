"""Fixtures shared by every test module: a loopback server, a refused port, opt-in log redaction."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from resilient_session import registry
from resilient_session.observe.logging import REDACTED_LOGGERS, redact_library_logs
from resilient_session.stores.memory import clear_memory_stores
from tests.integration.upstream import Upstream


@pytest.fixture(autouse=True)
def _process_state_reset() -> Iterator[None]:
    """What the package's pytest plugin does between tests, also when it is not loaded through its entry
    point (an editable install made before the entry point existed): registry put back, state cleared."""
    saved = registry.snapshot()
    yield
    registry.restore(saved)
    clear_memory_stores()


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


@pytest.fixture
def library_logs_redacted() -> Iterator[None]:
    """Other libraries' log records redacted (the opt-in ``redact_library_logs()``), for this test only."""
    before = {name: list(logging.getLogger(name).filters) for name in REDACTED_LOGGERS}
    redact_library_logs()
    yield
    for name, filters in before.items():
        logging.getLogger(name).filters[:] = filters
