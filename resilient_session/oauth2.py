"""Deprecated alias of :mod:`resilient_session.auth.oauth2`, kept for one release."""

from __future__ import annotations

import warnings

from .auth.oauth2 import (
    _NOT_A_TOKEN as _NOT_A_TOKEN,
)
from .auth.oauth2 import (
    _UNAVAILABLE as _UNAVAILABLE,
)
from .auth.oauth2 import (
    Clock as Clock,
)
from .auth.oauth2 import (
    OAuth2ClientCredentials as OAuth2ClientCredentials,
)
from .auth.oauth2 import (
    OAuth2RefreshToken as OAuth2RefreshToken,
)
from .auth.oauth2 import (
    Scope as Scope,
)
from .auth.oauth2 import (
    TimeoutArg as TimeoutArg,
)
from .auth.oauth2 import (
    TokenSaver as TokenSaver,
)
from .auth.oauth2 import (
    _extract_cookies as _extract_cookies,
)
from .auth.oauth2 import (
    _OAuth2Auth as _OAuth2Auth,
)
from .auth.oauth2 import (
    _oauth_libs as _oauth_libs,
)
from .auth.oauth2 import (
    _register_hook as _register_hook,
)
from .auth.oauth2 import (
    _rewind as _rewind,
)
from .auth.oauth2 import (
    _Token as _Token,
)
from .auth.oauth2 import (
    log as log,
)

warnings.warn(
    "resilient_session.oauth2 moved to resilient_session.auth.oauth2",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["OAuth2ClientCredentials", "OAuth2RefreshToken"]
