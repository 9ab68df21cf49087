"""The ``resilient-session`` command.

Each subcommand is an ``add_<name>_parser`` function that registers its arguments and sets
``handler`` to a ``run_<name>(args) -> int`` function; :data:`SUBCOMMANDS` lists them in help order.
Handlers import what they need lazily, so ``--help`` stays fast and works without optional extras.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TypeAlias

from .config_commands import add_call_parser, add_check_parser

__all__ = ["EXIT_BROKEN_PIPE", "SUBCOMMANDS", "build_parser", "main"]

#: Exit code when the reader of stdout went away (``... | head``): 128 + SIGPIPE, what a shell reports
#: for a command that SIGPIPE ended.
EXIT_BROKEN_PIPE = 141

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


# -- demo ---------------------------------------------------------------------------------------------


def add_demo_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a misbehaving local API with plain requests and with ResilientSession, side by side",
        description=(
            "Start a chaos server on 127.0.0.1 and run the same scripted calls (slow API, 500s, 429s, "
            "resets, malformed bodies, a dead host) with requests.Session and with ResilientSession. "
            "No network, no configuration."
        ),
    )
    parser.add_argument(
        "--watchdog",
        type=float,
        default=None,
        metavar="SECONDS",
        help="count a call as hung after this long (default 2; plain requests would wait forever)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    try:
        from . import demo as _demo
    except ImportError as error:
        print(
            f"resilient-session demo: the chaos server needs Flask ({error.name or error} is missing); "
            'install it with: pip install "resilient-session[chaos]"',
            file=sys.stderr,
        )
        return 2
    watchdog = _demo.WATCHDOG if args.watchdog is None else args.watchdog
    if watchdog <= _demo.DEADLINE:
        print(f"resilient-session demo: --watchdog must exceed {_demo.DEADLINE:g} s", file=sys.stderr)
        return 2
    print(
        f"Running {len(_demo.SCRIPT)} calls against a misbehaving API on 127.0.0.1, "
        "first with requests.Session, then with ResilientSession...",
        file=sys.stderr,
    )
    before, after = _demo.run_demo(watchdog=watchdog, progress=not args.no_progress)
    print()
    print(_demo.render(before, after, watchdog=watchdog))
    return 0


# -- entry point --------------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[Subparsers], None]] = [add_demo_parser, add_check_parser, add_call_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilient-session",
        description="Timeouts, retries, circuit breaking and typed errors for every requests call.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``resilient-session`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = handler(args)
        sys.stdout.flush()  # a write still buffered fails here, not at exit where it would print
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit does not raise a second
    BrokenPipeError (the recipe of the Python docs' "Note on SIGPIPE")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed to a pipe at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
