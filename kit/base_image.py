"""The base image the Dockerfile builds FROM: the official one when we can get it, else ours.

Order of preference, so that a no-change build never waits on a network:
1. `BASE_IMAGE` already present in the local engine;
2. the local Debian base (LOCAL_BASE) already present, when BASE_IMAGE was not chosen
   explicitly;
3. `BASE_IMAGE` pulled from its registry;
4. an equivalent local base built from Debian packages (debootstrap + `docker import`),
   for machines with no registry: air-gapped sites, and the CI machines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kit import console
from kit.console import KitError
from kit.docker_cli import docker, inspect_image

DEFAULT_BASE = "python:3.12-slim"
LOCAL_BASE = "localhost/webapp-base:bookworm"
SUITE = "bookworm"
# python3-venv brings ensurepip, which the Dockerfile's venv step needs; sqlite3 is the
# operators' CLI, included here so an offline build never needs apt.
PACKAGES = ("python3", "python3-venv", "ca-certificates", "sqlite3")
# Paths dropped before import: package caches and documentation nobody reads in a container.
PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
)
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
IMPORT_CHANGES = (
    "ENV LANG=C.UTF-8",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["python3"]',
)


@dataclass(frozen=True)
class BaseImage:
    reference: str
    image_id: str
    size: int
    built_locally: bool


def _describe(reference: str, *, built_locally: bool = False) -> BaseImage | None:
    record = inspect_image(reference)
    if record is None:
        return None
    return BaseImage(reference, record["Id"], int(record["Size"]), built_locally)


def _sources_entries() -> list[tuple[str, list[str]]]:
    """(URI, suites) pairs from the host's apt sources, in both one-line and deb822 form."""
    entries: list[tuple[str, list[str]]] = []
    files: list[Path] = []
    for location in APT_SOURCES:
        if location.is_file():
            files.append(location)
        elif location.is_dir():
            files.extend(sorted(location.glob("*.list")) + sorted(location.glob("*.sources")))
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (key.strip().lower(), value.strip())
                    for key, _, value in (
                        line.partition(":")
                        for line in stanza.splitlines()
                        if ":" in line and not line.lstrip().startswith("#")
                    )
                )
                if "deb" not in fields.get("types", "").split():
                    continue
                for uri in fields.get("uris", "").split():
                    entries.append((uri, fields.get("suites", "").split()))
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], [words[2]]))
    return entries


def debian_mirror() -> str:
    """The Debian mirror the host already uses for SUITE; no hard-coded address."""
    for uri, suites in _sources_entries():
        if SUITE in suites and uri.startswith(("http://", "https://")):
            return uri
    raise KitError(
        f"no apt source for Debian '{SUITE}' in /etc/apt/sources.list*; add one "
        f"(e.g. `deb http://<mirror>/debian {SUITE} main`) or set BASE_IMAGE to an image "
        "you have"
    )


def build_local_base(reference: str = LOCAL_BASE) -> BaseImage:
    """Bootstrap a minimal Debian with Python and import it into the engine as `reference`."""
    if shutil.which("debootstrap") is None:
        raise KitError("debootstrap: command not found; run `sudo bash .ci/prepare-host`")
    if os.geteuid() != 0:
        raise KitError("building the local base image needs root (debootstrap); run as root")
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="webapp-base-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        console.detail(f"debootstrap {SUITE} from {mirror} (about a minute)")
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
            raise KitError(f"debootstrap {SUITE} from {mirror} failed: {tail[0]}")
        for relative in PRUNE:
            target = rootfs / relative
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
            stdout=subprocess.PIPE,
        )
        imported = subprocess.run(
            ["docker", "import", *changes, "-", reference],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise KitError(f"`docker import` of the local base failed: {imported.stderr.strip()}")
    base = _describe(reference, built_locally=True)
    if base is None:
        raise KitError(
            f"{reference} is missing right after `docker import`; check `docker images`"
        )
    return base


def ensure(requested: str | None = None) -> BaseImage:
    """Return a usable base image, building the local one only when nothing else works."""
    explicit = requested or os.environ.get("BASE_IMAGE") or None
    wanted = explicit or DEFAULT_BASE
    present = _describe(wanted)
    if present is not None:
        return present
    if explicit is None or explicit == LOCAL_BASE:
        local = _describe(LOCAL_BASE, built_locally=True)
        if local is not None:
            return local
    if wanted != LOCAL_BASE:
        pulled = docker("pull", "--quiet", wanted, check=False, timeout=300)
        if pulled.returncode == 0:
            found = _describe(wanted)
            if found is not None:
                return found
        reason = (pulled.stderr or "").strip().splitlines()[-1:] or ["no reason given"]
        console.detail(f"cannot pull {wanted} ({reason[0][:120]})")
    console.detail(f"building the equivalent local base {LOCAL_BASE} from Debian packages")
    return build_local_base(LOCAL_BASE)
