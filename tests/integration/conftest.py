"""Every test in this folder talks to a real server on 127.0.0.1 that the test starts itself."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _integration_marker(request: pytest.FixtureRequest) -> None:
    request.node.add_marker(pytest.mark.integration)
