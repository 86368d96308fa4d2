"""Build the webapp image, tag it, and record what was built in build/image.json.

The record is the hand-off to everything after the build: the compose stack, the Ansible
deploy (which ships the image by ID) and the tests all read the ID from there rather than
trusting a mutable tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit import console, revision
from kit.base_image import BaseImage
from kit.console import KitError
from kit.docker_cli import inspect_image

NAME = "webapp"
RECORD = Path("build/image.json")
# What the proxy service runs, beside the Caddy binary that requirements/app.txt pins: a
# release moves the hosts' proxy to a new image only when this digest changes
# (ansible/roles/webapp/files/release_up.sh reads the label), so most never restart it.
PROXY_LABEL = "webapp.proxy-fingerprint"
# The tag a server's proxy runs (WEBAPP_PROXY_IMAGE in the env file the deploy renders).
PROXY_TAG = f"{NAME}:proxy"
PROXY_SOURCES = (
    "Dockerfile",
    "requirements/app.txt",
    "webapp/settings.py",
    "webapp/sqlite_floor.py",
    "webapp/ops/cli.py",
    "webapp/ops/proxy_cli.py",
    "webapp/ops/proxy_config.py",
    "webapp/ops/slots.py",
)


def proxy_fingerprint(base_image_id: str, root: Path = Path()) -> str:
    digest = hashlib.sha256(base_image_id.encode())
    for name in PROXY_SOURCES:
        digest.update(f"\0{name}\0".encode())
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class BuildResult:
    record: dict[str, Any]
    executed_steps: int
    cached_steps: int
    seconds: float


def _docker_build(arguments: list[str]) -> tuple[int, int]:
    """Run the classic builder, echo the steps it runs; count those and the cache hits."""
    env = dict(os.environ)
    # No BuildKit on our machines; say so explicitly so the CLI does not try buildx first.
    env["DOCKER_BUILDKIT"] = "0"
    process = subprocess.Popen(
        ["docker", "build", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    tail: deque[str] = deque(maxlen=15)
    executed = cached = 0
    # A step is shown only once we know it runs: its next line is "Using cache" for a cache
    # hit, and a bare " ---> <id>" for steps with nothing to run (FROM, ARG).
    pending = ""
    for raw in process.stdout:
        line = raw.rstrip()
        tail.append(line)
        if line.startswith("Step "):
            pending = line
        elif pending and "Using cache" in line:
            cached += 1
            pending = ""
        elif pending and re.fullmatch(r" ---> [0-9a-f]{12}", line):
            pending = ""
        elif pending:
            executed += 1
            console.detail(pending[:110])
            pending = ""
        if line.startswith(("error:", "wheelhouse/")):
            console.detail(line)
    if process.wait() != 0:
        for line in tail:
            console.detail(f"| {line}")
        raise KitError(f"`docker build` failed (exit {process.returncode}); see its output above")
    return executed, cached


def build(base: BaseImage, *, dockerfile: str = "Dockerfile", context: str = ".") -> BuildResult:
    """Build and tag the image from the current tree; write and return the build record."""
    source = revision.current(RECORD)
    tag = f"{NAME}:{source.tag_suffix}"
    started = time.monotonic()
    build_args = {
        "BASE_IMAGE": base.reference,
        "APP_VERSION": source.version,
        "APP_REVISION": source.revision,
        "APP_BUILT_AT": source.built_at,
    }
    # --force-rm: a failed step leaves no stopped container behind.
    arguments = ["--force-rm", "--file", dockerfile, "--tag", tag, "--tag", f"{NAME}:latest"]
    arguments += ["--label", f"{PROXY_LABEL}={proxy_fingerprint(base.image_id, Path(context))}"]
    for name, value in build_args.items():
        arguments += ["--build-arg", f"{name}={value}"]
    executed, cached = _docker_build([*arguments, context])
    seconds = time.monotonic() - started
    inspected = inspect_image(tag)
    if inspected is None:
        raise KitError(f"{tag} is missing right after `docker build`; check `docker images`")
    record = {
        "image": tag,
        "id": inspected["Id"],
        "size": int(inspected["Size"]),
        "base_image": base.reference,
        "base_image_id": base.image_id,
        "base_image_size": base.size,
        "version": source.version,
        "revision": source.revision,
        "dirty": source.dirty,
        "built_at": source.built_at,
        "source_digest": source.source_digest,
        "tags": [tag, f"{NAME}:latest"],
    }
    RECORD.parent.mkdir(exist_ok=True)
    temporary = RECORD.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    temporary.replace(RECORD)
    return BuildResult(record, executed, cached, seconds)


def load_record(path: Path = RECORD) -> dict[str, Any]:
    """The last build record; fails with what to run when there is none."""
    if not path.is_file():
        raise KitError(f"{path} is missing; run `nox -s build` first")
    record: dict[str, Any] = json.loads(path.read_text())
    return record
