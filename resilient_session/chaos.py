"""Deprecated alias of :mod:`resilient_session.testing.chaos`, kept for one release."""

from __future__ import annotations

import warnings

from .testing.chaos import (
    _LOOPBACK_NAMES as _LOOPBACK_NAMES,
)
from .testing.chaos import (
    _MALFORMED_JSON_BODY as _MALFORMED_JSON_BODY,
)
from .testing.chaos import (
    _SOAP_FAULT_BODY as _SOAP_FAULT_BODY,
)
from .testing.chaos import (
    _XML_BODY as _XML_BODY,
)
from .testing.chaos import (
    CONTROL_PREFIX as CONTROL_PREFIX,
)
from .testing.chaos import (
    ChaosServer as ChaosServer,
)
from .testing.chaos import (
    _arg_float as _arg_float,
)
from .testing.chaos import (
    _arg_int as _arg_int,
)
from .testing.chaos import (
    _connection as _connection,
)
from .testing.chaos import (
    _Dropped as _Dropped,
)
from .testing.chaos import (
    _error as _error,
)
from .testing.chaos import (
    _fault_applies as _fault_applies,
)
from .testing.chaos import (
    _json_body as _json_body,
)
from .testing.chaos import (
    _ok as _ok,
)
from .testing.chaos import (
    _QuietHandler as _QuietHandler,
)
from .testing.chaos import (
    _reset as _reset,
)
from .testing.chaos import (
    _send_then_reset as _send_then_reset,
)
from .testing.chaos import (
    _State as _State,
)
from .testing.chaos import (
    _state as _state,
)
from .testing.chaos import (
    _wait as _wait,
)
from .testing.chaos import (
    create_app as create_app,
)
from .testing.chaos import (
    is_loopback as is_loopback,
)
from .testing.chaos import (
    main as main,
)

warnings.warn(
    "resilient_session.chaos moved to resilient_session.testing.chaos",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ChaosServer", "create_app", "is_loopback", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
