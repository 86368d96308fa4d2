"""Read the stack's env files (.env.dev, .env.prod): plain KEY=VALUE lines, nothing else.

Compose, Ansible and this kit all read the same files, so they hold only what every one
of them parses the same way: no quotes, no `export`, no `${...}` expansion.
"""

from __future__ import annotations

import re
from pathlib import Path

from kit.console import KitError

ENVIRONMENTS = ("dev", "prod")
_LINE = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>[^\"'`$\\]*)$")


def path_for(environment: str) -> Path:
    if environment not in ENVIRONMENTS:
        raise KitError(
            f"unknown environment {environment!r}; use one of: {', '.join(ENVIRONMENTS)}"
        )
    return Path(f".env.{environment}")


def parse(path: Path) -> dict[str, str]:
    """KEY=VALUE pairs in file order; a line of any other shape is an error naming it."""
    if not path.is_file():
        raise KitError(f"{path} is missing; it is part of the repository, restore it with git")
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(stripped)
        if match is None:
            raise KitError(
                f"{path}:{number}: {stripped!r} is not a plain KEY=VALUE line "
                "(no quotes, spaces around '=', or shell syntax); fix that line"
            )
        values[match["key"]] = match["value"]
    return values
