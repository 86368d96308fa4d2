"""What source an image is built from: version, git revision, dirtiness and build time.

Only the files that go into the image count (IMAGE_INPUTS). Other helpers' uncommitted
work elsewhere in the tree (ansible/, tests/) neither marks the image dirty nor changes
its build values, because it does not change the image.

`built_at` must not change when the source does not, or "a rebuild with nothing changed
rebuilds nothing" breaks in the last layer. So a clean tree uses its commit's time, and a
dirty tree reuses the previous build's time while the image inputs hash the same.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kit.console import KitError

IMAGE_INPUTS = (
    "Dockerfile",
    ".dockerignore",
    "gunicorn.conf.py",
    "pyproject.toml",
    "requirements/app.txt",
    "webapp",
)


@dataclass(frozen=True)
class Revision:
    version: str
    revision: str
    dirty: bool
    built_at: str
    source_digest: str

    @property
    def short(self) -> str:
        return self.revision[:7]

    @property
    def tag_suffix(self) -> str:
        return f"{self.version}-{self.short}" + ("-dirty" if self.dirty else "")


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise KitError(f"`git {' '.join(args)}` failed ({reason[0]}); build from a git checkout")
    return result.stdout


def project_version(pyproject: Path = Path("pyproject.toml")) -> str:
    try:
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as error:
        raise KitError(f"cannot read [project].version from {pyproject}: {error}") from None


def source_digest() -> str:
    """Hash of every tracked or untracked-but-not-ignored image input, path and content."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
                  *IMAGE_INPUTS)  # fmt: skip
    digest = hashlib.sha256()
    for name in sorted(set(filter(None, listed.split("\0")))):
        path = Path(name)
        digest.update(name.encode() + b"\0")
        # A file staged as deleted is listed but gone: its absence is part of the state.
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def current(previous_record: Path = Path("build/image.json")) -> Revision:
    revision = _git("rev-parse", "HEAD").strip()
    dirty = bool(_git("status", "--porcelain", "--untracked-files=all", "--", *IMAGE_INPUTS))
    digest = source_digest()
    if not dirty:
        committed = int(_git("show", "-s", "--format=%ct", "HEAD").strip())
        built_at = _iso(datetime.fromtimestamp(committed, UTC))
    else:
        built_at = _iso(datetime.now(UTC))
        if previous_record.is_file():
            try:
                previous = json.loads(previous_record.read_text())
            except json.JSONDecodeError:
                previous = {}
            if previous.get("source_digest") == digest and previous.get("revision") == revision:
                built_at = previous.get("built_at", built_at)
    return Revision(project_version(), revision, dirty, built_at, digest)
