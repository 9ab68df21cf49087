"""Deprecated alias of :mod:`resilient_session.contrib.flask`, kept for one release."""

from __future__ import annotations

import warnings

from .contrib.flask.extension import (  # noqa: F401
    _BINDING,
    _BODY_PREVIEW,
    _CALLS,
    _KINDS,
    _MAX_SEEN_HOSTS,
    _REQUEST_ID,
    _RESPONSES,
    _RESPONSES_KEPT,
    _VALID_REQUEST_ID,
    DEFAULT_PROBLEM_TYPE_BASE,
    EXTENSION_KEY,
    AppIntegrations,
    Integrations,
    Problem,
    _answer,
    _attempts,
    _bind_request_id,
    _body_is,
    _classify,
    _echo_request_id,
    _LastError,
    _source_of,
    _typed_status_error,
    _unbind_request_id,
    _upstream_details,
    problem_for,
    register_error_handlers,
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
