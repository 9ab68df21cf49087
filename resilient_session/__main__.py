"""``python -m resilient_session`` runs the command-line interface."""

from .cli import main

raise SystemExit(main())
