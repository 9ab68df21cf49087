"""Deprecated alias of :mod:`resilient_session.cli.config_commands`, kept for one release."""

from __future__ import annotations

import warnings

from .cli.config_commands import (
    _EPILOG as _EPILOG,
)
from .cli.config_commands import (
    _TOKEN as _TOKEN,
)
from .cli.config_commands import (
    EXIT_CODES as EXIT_CODES,
)
from .cli.config_commands import (
    Subparsers as Subparsers,
)
from .cli.config_commands import (
    _error_dict as _error_dict,
)
from .cli.config_commands import (
    _exit_code as _exit_code,
)
from .cli.config_commands import (
    _is_set as _is_set,
)
from .cli.config_commands import (
    _print as _print,
)
from .cli.config_commands import (
    _secrets as _secrets,
)
from .cli.config_commands import (
    add_call_parser as add_call_parser,
)
from .cli.config_commands import (
    add_check_parser as add_check_parser,
)
from .cli.config_commands import (
    normalized_dict as normalized_dict,
)
from .cli.config_commands import (
    run_call as run_call,
)
from .cli.config_commands import (
    run_check as run_check,
)

warnings.warn(
    "resilient_session._config_cli moved to resilient_session.cli.config_commands",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["EXIT_CODES", "add_call_parser", "add_check_parser", "normalized_dict", "run_call", "run_check"]
