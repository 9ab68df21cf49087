"""Deprecated alias of :mod:`resilient_session.contrib.flask`, kept for one release."""

from __future__ import annotations

import warnings

from .contrib.flask.extension import Integrations
from .contrib.flask.handlers import (  # noqa: F401
    _answer,
    _attempts,
    _body_is,
    _source_of,
    _typed_status_error,
    register_error_handlers,
)
from .contrib.flask.problems import (  # noqa: F401
    _BODY_PREVIEW,
    _KINDS,
    DEFAULT_PROBLEM_TYPE_BASE,
    Problem,
    _classify,
    _upstream_details,
    problem_for,
)
from .contrib.flask.request_ids import (  # noqa: F401
    _BINDING,
    _REQUEST_ID,
    _VALID_REQUEST_ID,
)
from .contrib.flask.request_ids import bind_incoming_request_id as _bind_request_id  # noqa: F401
from .contrib.flask.request_ids import echo_request_id as _echo_request_id  # noqa: F401
from .contrib.flask.request_ids import unbind_request_id as _unbind_request_id  # noqa: F401
from .contrib.flask.sessions import (  # noqa: F401
    _CALLS,
    _MAX_SEEN_HOSTS,
    _RESPONSES,
    _RESPONSES_KEPT,
    EXTENSION_KEY,
    AppIntegrations,
    _LastError,
)

warnings.warn(
    "resilient_session.flask moved to resilient_session.contrib.flask",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "EXTENSION_KEY",
    "AppIntegrations",
    "Integrations",
    "Problem",
    "problem_for",
    "register_error_handlers",
]
