"""Deprecated alias of :mod:`resilient_session.cli.config_commands`, kept for one release."""

from __future__ import annotations

import warnings

from .cli.config_commands import (  # noqa: F401
    _EPILOG,
    _TOKEN,
    EXIT_CODES,
    _error_dict,
    _exit_code,
    _is_set,
    _print,
    _secrets,
    add_call_parser,
    add_check_parser,
    normalized_dict,
    run_call,
    run_check,
)

warnings.warn(
    "resilient_session._config_cli moved to resilient_session.cli.config_commands",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["EXIT_CODES", "add_call_parser", "add_check_parser", "normalized_dict", "run_call", "run_check"]
