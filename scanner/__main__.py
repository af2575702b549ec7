"""``python -m scanner`` runs the lmscan command line."""

from scanner.cli import main

raise SystemExit(main())
