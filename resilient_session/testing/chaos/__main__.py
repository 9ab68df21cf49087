"""``python -m resilient_session.testing.chaos``."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
