"""Credentials for a session: API keys, bearer tokens, Basic auth and OAuth 2 tokens."""

from __future__ import annotations

from .keys import (
    APIKeyAuth,
    BasicAuth,
    BearerAuth,
    CredentialAuth,
    carry_credentials,
    env_secret,
    is_header_safe,
)
from .oauth2 import OAuth2ClientCredentials, OAuth2RefreshToken

__all__ = [
    "APIKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "CredentialAuth",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "carry_credentials",
    "env_secret",
    "is_header_safe",
]
