"""`python -m webapp ...`: see webapp.ops.cli."""

from webapp.ops.cli import main

raise SystemExit(main())
