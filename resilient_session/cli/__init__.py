"""The ``resilient-session`` command: ``check`` and ``call`` an integrations file, run the ``demo``."""

from __future__ import annotations

from .app import EXIT_BROKEN_PIPE, SUBCOMMANDS, add_demo_parser, build_parser, main, run_demo

__all__ = ["EXIT_BROKEN_PIPE", "SUBCOMMANDS", "add_demo_parser", "build_parser", "main", "run_demo"]
