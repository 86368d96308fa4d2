"""The SQLite packages the image installs: Debian forky's build, pinned by SHA-256.

Debian 13's own libsqlite3 (3.46.1) has the WAL-reset bug (see webapp/sqlite_floor.py).
Forky's libsqlite3-0 needs only glibc 2.38, and Debian 13 has 2.41, so its two packages
(the library and the CLI) install into either Debian 13 base. They are resolved once from
the archive's signed index into requirements/sqlite.lock, like the wheel lock, and a build
installs exactly those files from debs/ with no network; an apt pin on forky would instead
take whatever forky holds on the day of the build.

    python -m kit.debs lock     # re-resolve the lock (needs the Debian archive over HTTP)
    python -m kit.debs fetch    # fill debs/ for this machine's architecture
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import platform
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit import base_image
from kit.console import KitError, detail
from webapp.sqlite_floor import FLOOR_TEXT, below_floor

LOCK = Path("requirements/sqlite.lock")
DEBS = Path("debs")
CHECKSUMS = DEBS / "SHA256SUMS"
SUITE = "forky"
PACKAGES = ("libsqlite3-0", "sqlite3")
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
TIMEOUT = 60


@dataclass(frozen=True)
class Debs:
    files: int
    size: int
    version: str
    fetched: bool


def architecture(machine: str) -> str:
    """Debian's name for a machine type as Python reports it (x86_64 -> amd64)."""
    try:
        return ARCHITECTURES[machine]
    except KeyError:
        raise KitError(
            f"no SQLite packages are locked for {machine!r}; the lock covers "
            f"{', '.join(ARCHITECTURES)}"
        ) from None


def _get(url: str) -> bytes:
    # Plain HTTP is how Debian archives are served; integrity comes from the signed
    # InRelease and the SHA-256 sums it lists, never from the transport.
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310
            data: bytes = response.read()
            return data
    except OSError as error:
        raise KitError(f"cannot download {url}: {error}") from None


def _verified_release(mirror: str) -> str:
    """The signed part of the suite's InRelease, after gpgv checked Debian's signature."""
    url = f"{mirror.rstrip('/')}/dists/{SUITE}/InRelease"
    signed = _get(url)
    if not KEYRING.is_file():
        raise KitError(f"{KEYRING} is missing; install debian-archive-keyring")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "InRelease"
        path.write_bytes(signed)
        result = subprocess.run(
            ["gpgv", "--keyring", str(KEYRING), "--output", "-", str(path)],
            capture_output=True,
            check=False,
        )
    if result.returncode != 0:
        last = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise KitError(f"{url} is not signed by a Debian archive key: {last[0]}")
    return result.stdout.decode()


def _release_sha256(release: str, name: str) -> str:
    """The SHA-256 the Release file lists for `name` (e.g. main/binary-amd64/Packages.xz)."""
    in_section = False
    for line in release.splitlines():
        if not line.startswith(" "):
            in_section = line.startswith("SHA256:")
            continue
        fields = line.split()
        if in_section and len(fields) == 3 and fields[2] == name:
            return fields[0]
    raise KitError(f"the {SUITE} Release file lists no {name}")


def _stanzas(index: str) -> list[dict[str, str]]:
    stanzas = []
    for block in index.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def resolve(mirror: str) -> dict[str, Any]:
    """Read the suite's signed index and pin PACKAGES for every locked architecture."""
    release = _verified_release(mirror)
    packages = []
    for arch in ARCHITECTURES.values():
        name = f"main/binary-{arch}/Packages.xz"
        detail(f"reading {SUITE} {name}")
        compressed = _get(f"{mirror.rstrip('/')}/dists/{SUITE}/{name}")
        if hashlib.sha256(compressed).hexdigest() != _release_sha256(release, name):
            raise KitError(f"{name} from {mirror} does not match its signed Release file")
        found = {
            stanza["Package"]: stanza
            for stanza in _stanzas(lzma.decompress(compressed).decode())
            if stanza.get("Package") in PACKAGES
        }
        for package in PACKAGES:
            if package not in found:
                raise KitError(f"{SUITE} has no {package} for {arch}")
            stanza = found[package]
            if below_floor(stanza["Version"]):
                raise KitError(
                    f"{SUITE}'s {package} is {stanza['Version']}, below the floor {FLOOR_TEXT}"
                )
            packages.append(
                {
                    "package": package,
                    "version": stanza["Version"],
                    "architecture": arch,
                    "filename": stanza["Filename"],
                    "size": int(stanza["Size"]),
                    "sha256": stanza["SHA256"],
                }
            )
    return {"suite": SUITE, "floor": FLOOR_TEXT, "packages": packages}


def write_lock(mirror: str, path: Path = LOCK) -> dict[str, Any]:
    lock = {"written_by": "nox -s lock (python -m kit.debs lock)", **resolve(mirror)}
    path.write_text(json.dumps(lock, indent=2) + "\n")
    return lock


def read_lock(path: Path = LOCK) -> dict[str, Any]:
    if not path.is_file():
        raise KitError(f"{path} is missing; run `nox -s lock` to create it")
    lock: dict[str, Any] = json.loads(path.read_text())
    return lock


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure(
    machine: str, mirror: str | None = None, directory: Path = DEBS, *, lock: Path = LOCK
) -> Debs:
    """Fill `directory` with the locked packages for `machine`, and only those; download
    only what is missing or does not match its pinned SHA-256."""
    arch = architecture(machine)
    wanted = [entry for entry in read_lock(lock)["packages"] if entry["architecture"] == arch]
    if not wanted:
        raise KitError(f"{lock} pins no packages for {arch}; run `nox -s lock`")
    directory.mkdir(exist_ok=True)
    fetched = False
    names = set()
    for entry in wanted:
        target = directory / Path(entry["filename"]).name
        names.add(target.name)
        if target.is_file() and _sha256(target) == entry["sha256"]:
            continue
        mirror = mirror or base_image.debian_mirror()
        detail(f"downloading {entry['package']} {entry['version']} {arch} from {mirror}")
        data = _get(f"{mirror.rstrip('/')}/{entry['filename']}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise KitError(
                f"{entry['filename']} from {mirror} does not match {lock}; "
                "the mirror is broken or the lock is stale (`nox -s lock`)"
            )
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(target)
        fetched = True
    for stale in directory.glob("*.deb"):
        if stale.name not in names:
            stale.unlink()
    sums = "".join(
        f"{entry['sha256']}  {Path(entry['filename']).name}\n"
        for entry in sorted(wanted, key=lambda entry: str(entry["filename"]))
    )
    checksums = directory / CHECKSUMS.name
    if not checksums.is_file() or checksums.read_text() != sums:
        checksums.write_text(sums)
    return Debs(
        files=len(wanted),
        size=sum(int(entry["size"]) for entry in wanted),
        version=str(wanted[0]["version"]),
        fetched=fetched,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.debs", description=__doc__)
    parser.add_argument("command", choices=("lock", "fetch"))
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "lock":
            lock = write_lock(base_image.debian_mirror())
            versions = sorted({entry["version"] for entry in lock["packages"]})
            print(f"{LOCK}: {len(lock['packages'])} packages from {SUITE}, {', '.join(versions)}")
        else:
            debs = ensure(platform.machine())
            print(f"{DEBS}/: {debs.files} packages, SQLite {debs.version}")
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
