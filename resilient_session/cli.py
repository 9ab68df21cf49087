"""The ``resilient-session`` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``resilient-session`` command."""
    print("resilient-session: the demo arrives with the failure kit", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
