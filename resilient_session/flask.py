"""Deprecated alias of :mod:`resilient_session.contrib.flask`, kept for one release."""

from __future__ import annotations

import warnings

from .contrib.flask.extension import (
    _BINDING as _BINDING,
)
from .contrib.flask.extension import (
    _BODY_PREVIEW as _BODY_PREVIEW,
)
from .contrib.flask.extension import (
    _CALLS as _CALLS,
)
from .contrib.flask.extension import (
    _KINDS as _KINDS,
)
from .contrib.flask.extension import (
    _MAX_SEEN_HOSTS as _MAX_SEEN_HOSTS,
)
from .contrib.flask.extension import (
    _REQUEST_ID as _REQUEST_ID,
)
from .contrib.flask.extension import (
    _RESPONSES as _RESPONSES,
)
from .contrib.flask.extension import (
    _RESPONSES_KEPT as _RESPONSES_KEPT,
)
from .contrib.flask.extension import (
    _VALID_REQUEST_ID as _VALID_REQUEST_ID,
)
from .contrib.flask.extension import (
    DEFAULT_PROBLEM_TYPE_BASE as DEFAULT_PROBLEM_TYPE_BASE,
)
from .contrib.flask.extension import (
    EXTENSION_KEY as EXTENSION_KEY,
)
from .contrib.flask.extension import (
    AppIntegrations as AppIntegrations,
)
from .contrib.flask.extension import (
    Integrations as Integrations,
)
from .contrib.flask.extension import (
    Problem as Problem,
)
from .contrib.flask.extension import (
    _answer as _answer,
)
from .contrib.flask.extension import (
    _attempts as _attempts,
)
from .contrib.flask.extension import (
    _bind_request_id as _bind_request_id,
)
from .contrib.flask.extension import (
    _body_is as _body_is,
)
from .contrib.flask.extension import (
    _classify as _classify,
)
from .contrib.flask.extension import (
    _echo_request_id as _echo_request_id,
)
from .contrib.flask.extension import (
    _LastError as _LastError,
)
from .contrib.flask.extension import (
    _source_of as _source_of,
)
from .contrib.flask.extension import (
    _typed_status_error as _typed_status_error,
)
from .contrib.flask.extension import (
    _unbind_request_id as _unbind_request_id,
)
from .contrib.flask.extension import (
    _upstream_details as _upstream_details,
)
from .contrib.flask.extension import (
    problem_for as problem_for,
)
from .contrib.flask.extension import (
    register_error_handlers as register_error_handlers,
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
