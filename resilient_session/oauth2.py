"""Deprecated alias of :mod:`resilient_session.auth.oauth2`, kept for one release."""

from __future__ import annotations

import warnings

from .auth.oauth2 import (  # noqa: F401
    _NOT_A_TOKEN,
    _UNAVAILABLE,
    Clock,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    Scope,
    TimeoutArg,
    TokenSaver,
    _extract_cookies,
    _OAuth2Auth,
    _oauth_libs,
    _register_hook,
    _rewind,
    _Token,
    log,
)

warnings.warn(
    "resilient_session.oauth2 moved to resilient_session.auth.oauth2",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["OAuth2ClientCredentials", "OAuth2RefreshToken"]
