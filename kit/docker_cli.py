"""How the kit talks to Docker: the `docker` CLI as a subprocess.

The CLI rather than an SDK because it is what the user has and reads: every command the
kit runs can be copied from the log and run by hand. Failures become a KitError whose
message carries the command and Docker's own last line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from kit.console import KitError


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def docker(
    *args: str,
    check: bool = True,
    capture: bool = True,
    env: Mapping[str, str] | None = None,
    input_bytes: bytes | None = None,
    timeout: float | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS` (in `cwd`); with check, a non-zero exit raises a one-line KitError."""
    if shutil.which("docker") is None:
        raise KitError("docker: command not found; run `sudo bash .ci/prepare-host` first")
    try:
        result = subprocess.run(
            ["docker", *args],
            check=False,
            capture_output=capture,
            text=input_bytes is None,
            input=input_bytes,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        # A registry that never answers must not hang a build: report it like a failure.
        message = f"no answer within {timeout:.0f} s"
        if check:
            raise KitError(f"`docker {' '.join(args[:3])} ...` failed: {message}") from None
        return subprocess.CompletedProcess(["docker", *args], 124, "", message)
    if input_bytes is not None:
        # Binary stdin means binary pipes; callers only ever need text back.
        result = subprocess.CompletedProcess(
            result.args,
            result.returncode,
            (result.stdout or b"").decode(errors="replace"),
            (result.stderr or b"").decode(errors="replace"),
        )
    if check and result.returncode != 0:
        reason = _last_line(result.stderr or result.stdout or "") if capture else "see above"
        raise KitError(f"`docker {' '.join(args[:3])} ...` failed: {reason}")
    return result


def engine_ready() -> None:
    """Fail with what to run when no engine answers, before any long step starts."""
    result = docker("info", "--format", "{{.ServerVersion}}", check=False)
    if result.returncode != 0:
        raise KitError(
            "the Docker engine does not answer (`docker info` failed); "
            "start it with `sudo bash .ci/prepare-host`"
        )


def inspect_image(reference: str) -> dict[str, Any] | None:
    """The image's `docker image inspect` record, or None when it is not present locally."""
    result = docker("image", "inspect", reference, check=False)
    if result.returncode != 0:
        return None
    records: list[dict[str, Any]] = json.loads(result.stdout)
    return records[0]


def compose(
    *args: str, env_file: str, extra_env: Mapping[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run `docker compose --env-file ENV_FILE ARGS` with optional variable overrides.

    Shell variables win over the env file in Compose, which is how callers point a stack
    at another image, port or project name without editing the committed file.
    """
    env = dict(os.environ)
    env.update(extra_env or {})
    return docker("compose", "--env-file", env_file, *args, env=env, **kwargs)
