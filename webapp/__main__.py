"""`python -m webapp ...`: see webapp.cli."""

from webapp.cli import main

raise SystemExit(main())
