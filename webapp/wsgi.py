"""The WSGI entry point: `webapp.wsgi:application`.

A configuration error ends the process with one line on stderr. Under Gunicorn the
same check has already run in gunicorn.conf.py, before any worker forks; exit code 4
here is Gunicorn's "app failed to load", which stops the arbiter instead of respawning.
"""

from __future__ import annotations

import sys

from webapp.config import make_app
from webapp.settings import ConfigError, load

try:
    application = make_app(load())
except ConfigError as exc:
    print(f"webapp: configuration error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(4) from None
