"""The base image the Dockerfile builds FROM: the official one when we can get it, else ours.

Order of preference, so that a no-change build never waits on a network:
1. `BASE_IMAGE` already present in the local engine;
2. the local Debian base (LOCAL_BASE) already present, when BASE_IMAGE was not chosen
   explicitly;
3. `BASE_IMAGE` pulled from its registry;
4. an equivalent local base built from Debian packages (debootstrap + `docker import`),
   for machines with no registry: air-gapped sites, and the CI machines.

Both paths are Debian 13 (trixie): the official `python:3.12-slim` is built on it too.
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
SUITE = "trixie"
LOCAL_BASE = f"localhost/webapp-base:{SUITE}"
# Debian's release names, so that the archive the host already uses can be told apart from
# third-party apt sources (a host may list only its own suite, e.g. bookworm).
DEBIAN_SUITES = frozenset(
    {"bullseye", "bookworm", "trixie", "forky", "duke", "sid", "stable", "testing", "unstable"}
)
# python3-venv brings ensurepip, which the Dockerfile's venv step needs; sqlite3 is the
# operators' CLI, included here so an offline build never needs apt (the Dockerfile then
# raises it and its library to the locked SQLite, see kit/debs.py).
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


@dataclass(frozen=True)
class Archives:
    """Where Debian's packages come from: the main archive, and its security archive."""

    main: str
    security: str | None

    def sources(self, suite: str) -> str:
        """A deb822 sources file for `suite`, its updates and, if known, its security fixes."""
        stanzas = [f"Types: deb\nURIs: {self.main}\nSuites: {suite} {suite}-updates\n"]
        if self.security is not None:
            stanzas.append(f"Types: deb\nURIs: {self.security}\nSuites: {suite}-security\n")
        keyring = "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        return "\n".join(f"{stanza}Components: main\n{keyring}" for stanza in stanzas)


def debian_archives() -> Archives:
    """The Debian archives the host already uses, whatever its own suite; no fixed address."""
    main = security = None
    for uri, suites in _sources_entries():
        if not uri.startswith(("http://", "https://")):
            continue
        names = {suite.split("-", 1)[0] for suite in suites} & DEBIAN_SUITES
        if not names:
            continue
        if all(suite.endswith("-security") for suite in suites):
            security = security or uri
        else:
            main = main or uri
    if main is None:
        raise KitError(
            "no Debian archive in /etc/apt/sources.list*; add one (e.g. "
            f"`deb http://<mirror>/debian {SUITE} main`) or set BASE_IMAGE to an image you have"
        )
    return Archives(main, security)


def debian_mirror() -> str:
    """The Debian archive the host already uses (the base and the SQLite lock read it)."""
    return debian_archives().main


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
        raise KitError(f"{what} failed: {tail[0]}")


def build_local_base(reference: str = LOCAL_BASE, *, suite: str = SUITE) -> BaseImage:
    """Bootstrap a minimal Debian `suite` with Python, bring it up to date with its updates
    and security suites, and import it into the engine as `reference`."""
    if shutil.which("debootstrap") is None:
        raise KitError("debootstrap: command not found; run `sudo bash .ci/prepare-host`")
    if os.geteuid() != 0:
        raise KitError("building the local base image needs root (debootstrap); run as root")
    archives = debian_archives()
    with tempfile.TemporaryDirectory(prefix="webapp-base-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        console.detail(f"debootstrap {suite} from {archives.main} (about a minute)")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                suite,
                str(rootfs),
                archives.main,
            ],
            f"debootstrap {suite} from {archives.main}",
        )
        # debootstrap writes only `SUITE main`: without the updates and security suites
        # the base would miss every fix released since the point release.
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(archives.sources(suite))
        if archives.security is None:
            console.detail("no Debian security archive in the host's apt sources: skipped")
        console.detail(f"applying {suite}-updates and {suite}-security")
        _run(
            ["chroot", str(rootfs), "sh", "-c",
             "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -q"
             " && apt-get clean"],
            f"apt-get upgrade inside the {suite} base",
        )  # fmt: skip
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
