"""Build times: cold, no-change and code-only-change builds, and the image size.

Builds run from a private copy of the image inputs in a temporary directory, under the
`webapp-bench` name, so the bench never edits the working tree, never rewrites
build/image.json and never retags the images other commands rely on.
"""

# The bench drives docker, wrk and ssh by name, as the kit does (kit/** has the same
# exemption): every argument is built here, none comes from a user.
# ruff: noqa: S603, S607

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit import base_image, console, debs, wheelhouse
from kit.console import KitError
from kit.docker_cli import docker, inspect_image
from kit.image import PROXY_LABEL, proxy_fingerprint

NAME = "webapp-bench"
INPUTS = (
    "Dockerfile",
    ".dockerignore",
    "gunicorn.conf.py",
    "requirements/app.txt",
    "requirements/sqlite.lock",
    "webapp",
)
COLD_BASE = "localhost/webapp-bench-base:cold"


@dataclass
class Context:
    """A private build context; `change()` makes a code-only change in it."""

    path: Path
    record: dict[str, Any]
    changes: int = 0
    tags: list[str] = field(default_factory=list)

    def change(self) -> None:
        self.changes += 1
        with (self.path / "webapp" / "__init__.py").open("a") as module:
            module.write(f"\n# bench: code-only change {self.changes}\n")

    def build(self, tag: str, base: str, *, no_cache: bool = False) -> float:
        """`docker build` (classic builder) of this context as NAME:tag; its seconds."""
        arguments = ["build", "--quiet", "--force-rm", "--tag", f"{NAME}:{tag}"]
        arguments += ["--no-cache"] if no_cache else []
        # The label the real build sets: without it every release would move the hosts'
        # proxy to its image and restart it, dropping the connections of a redeploy.
        found = inspect_image(base)
        if found is None:
            raise KitError(f"the base image {base} is missing; run `nox -s build` first")
        arguments += ["--label", f"{PROXY_LABEL}={proxy_fingerprint(found['Id'], self.path)}"]
        values = {
            "BASE_IMAGE": base,
            # The build values of the real build, so the deploy's /version check passes.
            "APP_VERSION": self.record["version"],
            "APP_REVISION": self.record["revision"],
            "APP_BUILT_AT": self.record["built_at"],
        }
        for name, value in values.items():
            arguments += ["--build-arg", f"{name}={value}"]
        started = time.monotonic()
        docker(*arguments, str(self.path), env={**os.environ, "DOCKER_BUILDKIT": "0"})
        self.tags.append(f"{NAME}:{tag}")
        return time.monotonic() - started

    def release(self, tag: str, directory: Path) -> Path:
        """A build record for NAME:tag, in the format the deploy reads."""
        found = inspect_image(f"{NAME}:{tag}")
        if found is None:
            raise KitError(f"{NAME}:{tag} vanished after its build; rerun the bench")
        path = directory / f"{tag}.json"
        path.write_text(
            json.dumps(
                {
                    **self.record,
                    "image": f"{NAME}:{tag}",
                    "id": found["Id"],
                    "tags": [f"{NAME}:{tag}"],
                }
            )
        )
        return path


def private_context(record: dict[str, Any], directory: Path) -> Context:
    ignore = shutil.ignore_patterns("__pycache__", "*.py[co]", "*.db", "*.db-*")
    for name in INPUTS:
        source, target = Path(name), directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    return Context(directory, record)


def measure(context: Context, *, quick: bool) -> dict[str, Any]:
    """Cold, no-change and code-change build seconds, and the sizes of image and base."""
    base = context.record["base_image"]
    with console.step("Cold build" + (" (quick: the local base is reused)" if quick else "")):
        started = time.monotonic()
        if not quick:
            # A base of our own, so the cold build starts from nothing without removing
            # the base image every other command uses.
            base = base_image.build_local_base(COLD_BASE).reference
        with contextlib.chdir(context.path):  # wheelhouse/, debs/ and stamps go in the copy
            target = wheelhouse.probe(base)
            house = wheelhouse.ensure(target)
            debs.ensure(target.machine)
        context.build("v1", base, no_cache=True)
        cold = time.monotonic() - started
        console.detail(f"{cold:.1f} s ({house.wheels} wheels downloaded, no layer cache)")
    with console.step("No-change rebuild"):
        noop = context.build("v1", base)
    with console.step("Code-only-change rebuild"):
        context.change()
        code_change = context.build("v2", base)
    image = inspect_image(f"{NAME}:v2")
    base_record = inspect_image(base)
    if image is None or base_record is None:
        raise KitError(f"{NAME}:v2 or {base} is missing after the builds; rerun the bench")
    scope = "no wheels, no layer cache" + (", local base reused" if quick else ", no base image")
    return {
        "build.cold_s": cold,
        "build.noop_s": noop,
        "build.code_change_s": code_change,
        "build.image_bytes": int(image["Size"]),
        "build.base_image_bytes": int(base_record["Size"]),
        "cold_scope": scope,
        "base": base,
    }


def remove(context: Context) -> None:
    """Untag the bench's images; layers shared with real builds stay."""
    for tag in dict.fromkeys(context.tags):
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)
    subprocess.run(["docker", "rmi", COLD_BASE], capture_output=True, check=False)
