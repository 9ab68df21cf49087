"""Flask integration: the integrations file as sessions on the app, API errors as problem responses."""

from __future__ import annotations

from .extension import (
    DEFAULT_PROBLEM_TYPE_BASE,
    EXTENSION_KEY,
    AppIntegrations,
    Integrations,
    Problem,
    problem_for,
    register_error_handlers,
)

__all__ = [
    "DEFAULT_PROBLEM_TYPE_BASE",
    "EXTENSION_KEY",
    "AppIntegrations",
    "Integrations",
    "Problem",
    "problem_for",
    "register_error_handlers",
]
