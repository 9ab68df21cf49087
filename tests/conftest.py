"""Fixtures shared by every test module: a loopback server, a refused port, opt-in log redaction."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from hypothesis import settings

from resilient_session.observe.logging import REDACTED_LOGGERS, redact_library_logs
from tests.integration.upstream import Upstream

# Property tests check answers, not speed: a loaded CI machine must not fail one on hypothesis' 200 ms
# per-example deadline (speed targets live in benchmarks/).
settings.register_profile("resilient-session", deadline=None)
settings.load_profile("resilient-session")

# The package's fixtures and its reset of process-wide state between tests are opt-in, as for any user.
pytest_plugins = ["resilient_session.testing.pytest_plugin"]


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
