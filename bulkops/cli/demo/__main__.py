"""``python -m bulkops.cli.demo`` (what ``scripts/demo`` runs): the demo, its exit code."""

from .main import main

raise SystemExit(main())
