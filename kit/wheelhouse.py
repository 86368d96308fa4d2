"""The wheelhouse: every wheel the image installs, downloaded on the host with hash checks.

Image builds on these machines cannot reach PyPI (no HTTPS from inside a build), and an
air-gapped site cannot either, so the Dockerfile installs only from wheelhouse/. The
wheels must match the base image's Python and platform, not the host's, so we ask the
base image what it runs and download for that. A stamp under build/ records what the
wheelhouse was made from; when the lock and the target are unchanged nothing is fetched.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kit.console import KitError, detail
from kit.docker_cli import docker

WHEELHOUSE = Path("wheelhouse")
LOCK = Path("requirements/app.txt")
STAMP = Path("build/wheelhouse.json")

# Printed by the base image's own interpreter, so the wheels fit what the image runs.
_PROBE = (
    "import json, platform, sys;"
    "libc = platform.libc_ver();"
    "print(json.dumps({'python': '%d.%d' % sys.version_info[:2],"
    " 'implementation': sys.implementation.name,"
    " 'machine': platform.machine(), 'libc': libc[0], 'libc_version': libc[1]}))"
)


@dataclass(frozen=True)
class Target:
    """The interpreter and platform the wheels are for."""

    python: str
    implementation: str
    machine: str
    libc: str
    libc_version: str

    def platforms(self) -> list[str]:
        """manylinux tags this platform accepts, newest first; pure wheels fit anyway."""
        if self.libc != "glibc":
            raise KitError(
                f"base image libc is {self.libc or 'unknown'!r}; the wheelhouse supports "
                "glibc (Debian-based) images only; set BASE_IMAGE to one"
            )
        major, minor = (int(part) for part in self.libc_version.split(".")[:2])
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{self.machine}" for m, name in legacy.items() if m <= minor]
        return tags


@dataclass(frozen=True)
class Wheelhouse:
    wheels: int
    size: int
    fetched: bool


def probe(base_reference: str) -> Target:
    """Ask the base image which Python and platform it runs."""
    result = docker("run", "--rm", "--network", "none", base_reference, "python3", "-c", _PROBE)
    return Target(**json.loads(result.stdout))


def _marker_environment(target: Target) -> dict[str, str]:
    return {
        "python_version": target.python,
        "python_full_version": f"{target.python}.0",
        "implementation_name": target.implementation,
        "platform_python_implementation": "CPython" if target.implementation == "cpython" else "",
        "platform_machine": target.machine,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
    }


def _marker_class() -> Any:
    # The build session installs nothing, so `packaging` may be absent; pip, which the
    # wheelhouse needs anyway, carries its own copy.
    for module in ("packaging.markers", "pip._vendor.packaging.markers"):
        try:
            return importlib.import_module(module).Marker
        except ImportError:
            continue
    raise KitError("neither packaging nor pip is importable; install pip into this Python")


def requirements_for(lock_text: str, target: Target) -> str:
    """The lock with its environment markers decided for `target`, not for this host.

    `pip download --python-version` picks wheels for the target but still evaluates
    markers against the interpreter running pip, so a package needed only on the image's
    Python (e.g. one marked `python_full_version >= '3.13'`) would never be fetched.
    """
    marker_class = _marker_class()
    environment = _marker_environment(target)
    kept: list[str] = []
    for block in re.split(r"(?<!\\)\n(?=\S)", lock_text):
        first, _, rest = block.partition("\n")
        requirement, separator, marker = first.partition(" ; ")
        if separator:
            marker_text = marker.rstrip(" \\").strip()
            if not marker_class(marker_text).evaluate(environment):
                continue
            first = f"{requirement} \\" if marker.rstrip().endswith("\\") else requirement
        kept.append(f"{first}\n{rest}" if rest else first)
    return "\n".join(kept)


def _read_lock() -> str:
    if not LOCK.is_file():
        raise KitError(f"{LOCK} is missing; run `nox -s lock` to create it")
    return LOCK.read_text()


def _current() -> Wheelhouse:
    wheels = sorted(WHEELHOUSE.glob("*.whl"))
    return Wheelhouse(len(wheels), sum(w.stat().st_size for w in wheels), fetched=False)


def ensure(target: Target) -> Wheelhouse:
    """Fill wheelhouse/ for `target` from the lock, unless the stamp says it already is."""
    requirements_text = requirements_for(_read_lock(), target)
    wanted = {
        "requirements_sha256": hashlib.sha256(requirements_text.encode()).hexdigest(),
        "target": asdict(target),
    }
    if STAMP.is_file() and any(WHEELHOUSE.glob("*.whl")):
        recorded = json.loads(STAMP.read_text())
        names = recorded.get("wheels", [])
        if (
            {key: recorded.get(key) for key in wanted} == wanted
            and names
            and all((WHEELHOUSE / name).is_file() for name in names)
        ):
            return _current()
    platform_args = [arg for tag in target.platforms() for arg in ("--platform", tag)]
    WHEELHOUSE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as staging:
        detail(f"downloading wheels for CPython {target.python} {target.machine} from {LOCK}")
        implementation = "cp" if target.implementation == "cpython" else target.implementation
        command = [sys.executable, "-m", "pip", "download", "--quiet"]
        command += ["--disable-pip-version-check", "--only-binary=:all:", "--require-hashes"]
        command += ["--implementation", implementation, "--python-version", target.python]
        requirements = Path(staging) / "requirements.txt"
        requirements.write_text(requirements_text)
        command += [*platform_args, "--dest", staging, "-r", str(requirements)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise KitError(
                f"pip download for the wheelhouse failed: {lines[-1].strip()} "
                "(PyPI must be reachable from this host once; then builds are offline)"
            )
        # Replace wholesale: stale wheels from an older lock would bloat the build
        # context and the COPY layer, even though --require-hashes ignores them.
        for old in WHEELHOUSE.glob("*.whl"):
            old.unlink()
        names = []
        for wheel in sorted(Path(staging).glob("*.whl")):
            shutil.move(str(wheel), WHEELHOUSE / wheel.name)
            names.append(wheel.name)
    STAMP.parent.mkdir(exist_ok=True)
    STAMP.write_text(json.dumps({**wanted, "wheels": names}, indent=2) + "\n")
    return Wheelhouse(len(names), sum((WHEELHOUSE / n).stat().st_size for n in names), True)
