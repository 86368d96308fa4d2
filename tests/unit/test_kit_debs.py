"""The SQLite package lock: resolved only from a signed index, installed only by hash.

A throw-away archive is served on 127.0.0.1 and signed with a key made for the test, so
the real gpgv check, the Release and Packages hashes and the downloads all run for real.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import lzma
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kit import debs
from kit.console import KitError

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg to sign")


@dataclass
class Archive:
    root: Path
    url: str
    keyring: Path
    requests: list[str]

    def publish(self, version: str = "3.53.4-2", sign_with: Path | None = None) -> None:
        """Write pool files, Packages.xz for both architectures and a signed InRelease."""
        suite = self.root / "dists" / debs.SUITE
        release_lines = []
        for arch in debs.ARCHITECTURES.values():
            stanzas = []
            for package in debs.PACKAGES:
                filename = f"pool/main/s/sqlite3/{package}_{version}_{arch}.deb"
                data = f"{package} {version} {arch}\n".encode()
                (self.root / filename).parent.mkdir(parents=True, exist_ok=True)
                (self.root / filename).write_bytes(data)
                stanzas.append(
                    f"Package: {package}\nVersion: {version}\nArchitecture: {arch}\n"
                    f"Filename: {filename}\nSize: {len(data)}\n"
                    f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
                )
            stanzas.append("Package: unrelated\nVersion: 1.0\n")
            index = lzma.compress("\n".join(stanzas).encode())
            name = f"main/binary-{arch}/Packages.xz"
            (suite / name).parent.mkdir(parents=True, exist_ok=True)
            (suite / name).write_bytes(index)
            release_lines.append(f" {hashlib.sha256(index).hexdigest()} {len(index)} {name}")
        release = suite / "Release"
        release.write_text(f"Codename: {debs.SUITE}\nSHA256:\n" + "\n".join(release_lines) + "\n")
        home = sign_with or self.keyring.parent / "gnupg"
        (suite / "InRelease").unlink(missing_ok=True)
        subprocess.run(
            ["gpg", "--batch", "--yes", "--homedir", str(home), "--clearsign",
             "--output", str(suite / "InRelease"), str(release)],
            check=True, capture_output=True,
        )  # fmt: skip


def _make_key(home: Path) -> None:
    home.mkdir(mode=0o700, parents=True)
    subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), "--passphrase", "",
         "--quick-generate-key", "Test Archive <archive@localhost>", "ed25519", "sign", "never"],
        check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    _make_key(tmp_path / "gnupg")
    keyring = tmp_path / "keyring.gpg"
    exported = subprocess.run(
        ["gpg", "--batch", "--homedir", str(tmp_path / "gnupg"), "--export"],
        check=True, capture_output=True,
    )  # fmt: skip
    keyring.write_bytes(exported.stdout)
    root = tmp_path / "mirror"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *_args) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(debs, "KEYRING", keyring)
    monkeypatch.chdir(tmp_path)
    try:
        yield Archive(root, f"http://127.0.0.1:{server.server_port}/", keyring, requests)
    finally:
        server.shutdown()
        server.server_close()
        for home in tmp_path.glob("**/gnupg"):
            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "all"],
                check=False,
                capture_output=True,
            )


def test_the_lock_pins_both_packages_for_every_architecture(archive: Archive) -> None:
    archive.publish()
    lock = debs.resolve(archive.url)
    assert lock["suite"] == debs.SUITE and lock["floor"] == "3.51.3"
    pinned = {(entry["package"], entry["architecture"]) for entry in lock["packages"]}
    assert pinned == {(p, a) for p in debs.PACKAGES for a in debs.ARCHITECTURES.values()}
    for entry in lock["packages"]:
        data = (archive.root / entry["filename"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["version"] == "3.53.4-2" and entry["size"] == len(data)


def test_an_index_signed_by_another_key_is_refused(archive: Archive, tmp_path: Path) -> None:
    _make_key(tmp_path / "other" / "gnupg")
    archive.publish(sign_with=tmp_path / "other" / "gnupg")
    with pytest.raises(KitError, match="is not signed by a Debian archive key"):
        debs.resolve(archive.url)


def test_a_package_index_that_differs_from_the_signed_release_is_refused(
    archive: Archive,
) -> None:
    archive.publish()
    index = archive.root / "dists" / debs.SUITE / "main" / "binary-amd64" / "Packages.xz"
    index.write_bytes(lzma.compress(b"Package: sqlite3\nVersion: 9.9.9\n"))
    with pytest.raises(KitError, match="does not match its signed Release file"):
        debs.resolve(archive.url)


def test_a_suite_below_the_floor_is_refused(archive: Archive) -> None:
    archive.publish(version="3.46.1-7")
    with pytest.raises(KitError, match=r"is 3\.46\.1-7, below the floor 3\.51\.3"):
        debs.resolve(archive.url)


def test_debs_are_downloaded_once_checked_and_listed_for_the_dockerfile(
    archive: Archive, tmp_path: Path
) -> None:
    archive.publish()
    lock_path = tmp_path / "requirements" / "sqlite.lock"
    lock_path.parent.mkdir()
    debs.write_lock(archive.url, lock_path)
    directory = tmp_path / "debs"
    directory.mkdir()
    (directory / "libsqlite3-0_3.40.1_amd64.deb").write_bytes(b"stale")
    first = debs.ensure("x86_64", archive.url, directory, lock=lock_path)
    assert first.fetched and first.files == 2 and first.version == "3.53.4-2"
    names = sorted(path.name for path in directory.glob("*.deb"))
    assert names == ["libsqlite3-0_3.53.4-2_amd64.deb", "sqlite3_3.53.4-2_amd64.deb"]
    check = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=directory, capture_output=True
    )
    assert check.returncode == 0, check.stdout
    archive.requests.clear()
    again = debs.ensure("x86_64", archive.url, directory, lock=lock_path)
    assert not again.fetched and archive.requests == []
    os.remove(directory / names[0])
    tampered = archive.root / json.loads(lock_path.read_text())["packages"][0]["filename"]
    tampered.write_bytes(b"not the locked file")
    with pytest.raises(KitError, match=r"does not match .*sqlite\.lock"):
        debs.ensure("x86_64", archive.url, directory, lock=lock_path)


def test_an_architecture_without_locked_packages_is_named() -> None:
    with pytest.raises(KitError, match="no SQLite packages are locked for 'riscv64'"):
        debs.architecture("riscv64")
