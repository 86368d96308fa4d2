"""Prod key files as the README tells operators to make them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from harness.repo import APP_UID


def new_key() -> str:
    """A random key of 64 URL-safe characters: what an operator is told to generate."""
    return secrets.token_urlsafe(48)


def write(path: Path, key: str | None = None, *, owner: int = APP_UID) -> Path:
    """Write `key` (a new one if None) as one line to `path`, mode 0600, owned by `owner`."""
    return store(path, ((new_key() if key is None else key) + "\n").encode(), owner=owner)


def store(path: Path, data: bytes, *, owner: int = APP_UID) -> Path:
    """Write exactly `data` to `path`, mode 0600, owned by `owner`.

    Without root the file cannot be handed to the container's user, so it is made
    readable by everyone instead (the directory is the caller's scratch space).
    """
    path.write_bytes(data)
    path.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(path, owner, owner)
    else:
        path.chmod(0o644)
    return path
