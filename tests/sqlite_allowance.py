"""The tests run the app on this machine's own Python too, whose SQLite may be older than
the image's (Debian 12's is 3.40.1). Prod-mode runs on it need ALLOW_OLD_SQLITE=1, which
the app accepts only outside env files; the container tests run the image's SQLite."""

from __future__ import annotations

import sqlite3

from webapp.sqlite_floor import below_floor

HOST_SQLITE_BELOW_FLOOR = below_floor(sqlite3.sqlite_version)
ALLOWANCE = {"ALLOW_OLD_SQLITE": "1"} if HOST_SQLITE_BELOW_FLOOR else {}
