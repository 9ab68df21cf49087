"""``python -m resilient_session`` runs the command-line interface."""

from .cli.app import main

raise SystemExit(main())
