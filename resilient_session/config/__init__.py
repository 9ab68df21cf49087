"""The integrations file: one table per upstream API, validated, turned into sessions.

:mod:`.schema` says what each table takes (the policy tables from the policies' own option specs),
:mod:`.load` reads and validates a file into :class:`IntegrationConfig` objects (:mod:`.model`),
:mod:`.describe` words their effective policy, and :mod:`.sessions` builds sessions from them.
"""

from __future__ import annotations

from .load import (
    MAX_CONFIG_SIZE,
    Source,
    integration,
    load_config,
    load_ready,
)
from .model import AuthConfig, IntegrationConfig
from .schema import AUTH_TYPES
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
