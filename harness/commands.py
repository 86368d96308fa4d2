"""Commands the harness runs, bounded, with everything they printed when they fail.

Docker goes through the kit's own path (kit.docker_cli), so the tests run docker exactly
as the kit does; a failure here is an AssertionError that carries both output streams,
because a test or drill report needs more than the kit's one line.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.repo import ROOT
from kit import docker_cli

TIMEOUT_S = 240


def _checked(
    argv: Sequence[str], result: subprocess.CompletedProcess[str], check: bool
) -> subprocess.CompletedProcess[str]:
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}"
        )
    return result


def docker(
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_S,
    cwd: Path = ROOT,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """`docker ARGS`; with check, a non-zero exit (or no answer in time) fails."""
    result = docker_cli.docker(
        *args, check=False, env=env, timeout=timeout, cwd=cwd, input_bytes=input_bytes
    )
    return _checked(["docker", *args], result, check)


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = TIMEOUT_S,
    cwd: Path = ROOT,
    stdin: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` and capture its output; `docker ...` takes the docker path above.

    `stdin` is a file streamed to the command (an image archive for `ssh ... docker load`).
    """
    if argv and argv[0] == "docker" and stdin is None:
        return docker(*argv[1:], check=check, env=env, timeout=timeout, cwd=cwd)
    with open(stdin or os.devnull, "rb") as source:
        result = subprocess.run(  # noqa: S603 (argv is built by the harness's callers)
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=source,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    decoded = subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )
    return _checked(argv, decoded, check)
