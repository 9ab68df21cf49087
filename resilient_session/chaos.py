"""Deprecated alias of :mod:`resilient_session.testing.chaos`, kept for one release."""

from __future__ import annotations

import warnings

from .testing.chaos import CONTROL_PREFIX, ChaosServer, create_app, is_loopback, main  # noqa: F401
from .testing.chaos.app import (  # noqa: F401
    _MALFORMED_JSON_BODY,
    _SOAP_FAULT_BODY,
    _XML_BODY,
    _arg_float,
    _arg_int,
    _error,
    _fault_applies,
    _json_body,
    _ok,
    _state,
    _wait,
)
from .testing.chaos.app import State as _State  # noqa: F401
from .testing.chaos.faults import _connection, _Dropped, _reset  # noqa: F401
from .testing.chaos.loopback import _LOOPBACK_NAMES  # noqa: F401
from .testing.chaos.server import _QuietHandler  # noqa: F401

warnings.warn(
    "resilient_session.chaos moved to resilient_session.testing.chaos",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ChaosServer", "create_app", "is_loopback", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
