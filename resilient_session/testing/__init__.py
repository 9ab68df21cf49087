"""Tools for testing code that calls APIs.

- the ``responses`` scenarios (:func:`flaky`, :func:`rate_limited`, ...), in :mod:`.scenarios`; they
  need ``responses``, imported on first use of one of them;
- :class:`~resilient_session.testing.chaos.ChaosServer`, a real misbehaving HTTP server (needs Flask);
- the pytest plugin, :mod:`resilient_session.testing.pytest_plugin`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scenarios import (
        MALFORMED_JSON,
        Scenario,
        connection_error,
        flaky,
        incomplete_body,
        malformed_json,
        problem,
        rate_limited,
        soap_fault,
        timeout,
    )

__all__ = [
    "MALFORMED_JSON",
    "Scenario",
    "connection_error",
    "flaky",
    "incomplete_body",
    "malformed_json",
    "problem",
    "rate_limited",
    "soap_fault",
    "timeout",
]


def __getattr__(name: str) -> Any:
    # The scenarios import ``responses``; the chaos server and the pytest plugin beside them do not.
    if name in __all__:
        return getattr(importlib.import_module(".scenarios", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
