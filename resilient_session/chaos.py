"""Deprecated alias of :mod:`resilient_session.testing.chaos`, kept for one release."""

from __future__ import annotations

import warnings

from .testing.chaos import (  # noqa: F401
    _LOOPBACK_NAMES,
    _MALFORMED_JSON_BODY,
    _SOAP_FAULT_BODY,
    _XML_BODY,
    CONTROL_PREFIX,
    ChaosServer,
    _arg_float,
    _arg_int,
    _connection,
    _Dropped,
    _error,
    _fault_applies,
    _json_body,
    _ok,
    _QuietHandler,
    _reset,
    _send_then_reset,
    _State,
    _state,
    _wait,
    create_app,
    is_loopback,
    main,
)

warnings.warn(
    "resilient_session.chaos moved to resilient_session.testing.chaos",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ChaosServer", "create_app", "is_loopback", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
