"""``python -m bulkops``: the same as the ``bulkops`` console script."""

from .cli import main

raise SystemExit(main())
