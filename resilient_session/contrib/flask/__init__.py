"""Flask integration: the integrations file as sessions on the app, API errors as problem responses."""

from __future__ import annotations

from .extension import Integrations
from .handlers import register_error_handlers
from .problems import DEFAULT_PROBLEM_TYPE_BASE, Problem, problem_for
from .sessions import EXTENSION_KEY, AppIntegrations

__all__ = [
    "DEFAULT_PROBLEM_TYPE_BASE",
    "EXTENSION_KEY",
    "AppIntegrations",
    "Integrations",
    "Problem",
    "problem_for",
    "register_error_handlers",
]
