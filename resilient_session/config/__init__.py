"""The integrations file: one table per upstream API, validated, turned into sessions."""

from __future__ import annotations

from .load import (
    AUTH_TYPES,
    MAX_CONFIG_SIZE,
    AuthConfig,
    IntegrationConfig,
    Source,
    integration,
    load_config,
    load_ready,
)
from .sessions import load_integrations, session_from_config

__all__ = [
    "AUTH_TYPES",
    "MAX_CONFIG_SIZE",
    "AuthConfig",
    "IntegrationConfig",
    "Source",
    "integration",
    "load_config",
    "load_integrations",
    "load_ready",
    "session_from_config",
]
