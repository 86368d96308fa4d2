"""Drive the kit's compose stack in tests: run commands, talk HTTP, poll, all bounded.

Kept apart from conftest.py so test modules can import these helpers by name.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RECORD = REPO / "build" / "image.json"
APP_UID = 10001
# Short intervals make health (and so each kill cycle) quick; production keeps 5 s.
FAST_HEALTH = "2s"
COMPOSE_TIMEOUT = 240


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = COMPOSE_TIMEOUT,
    cwd: Path = REPO,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}"
        )
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Stack:
    """One compose project of the kit, driven exactly as a user would drive it."""

    environment: str
    project: str
    port: int
    image: str
    variables: dict[str, str] = field(default_factory=dict)
    # The checkout the compose files are used from; a copy lets a test edit the source.
    checkout: Path = REPO
    metrics_port: int = field(default_factory=free_port)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("WEBAPP_SECRET_KEY_FILE", None)
        env.update(
            COMPOSE_PROJECT_NAME=self.project,
            WEBAPP_PORT=str(self.port),
            WEBAPP_METRICS_PORT=str(self.metrics_port),
            WEBAPP_BIND_ADDRESS="127.0.0.1",
            WEBAPP_IMAGE=self.image,
            SQLITE_HEALTHCHECK_INTERVAL=FAST_HEALTH,
            APP_HEALTHCHECK_INTERVAL=FAST_HEALTH,
        )
        env.update(self.variables)
        return env

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "--env-file", f".env.{self.environment}", *args]
        return run(command, env=self.env(), check=check, cwd=self.checkout)

    def up(self, *services: str) -> None:
        self.compose(
            "up", "--detach", "--wait", "--wait-timeout", str(COMPOSE_TIMEOUT), "--no-build",
            *services,
        )  # fmt: skip

    def down(self, *, volumes: bool = False) -> None:
        self.compose("down", "--remove-orphans", *(["--volumes"] if volumes else []))

    def container(self, service: str) -> str:
        found = self.compose("ps", "--all", "--quiet", service).stdout.split()
        assert len(found) == 1, f"expected one {service} container in {self.project}: {found}"
        return found[0]

    def inspect(self, service: str) -> dict[str, Any]:
        output = run(["docker", "inspect", self.container(service)]).stdout
        record: dict[str, Any] = json.loads(output)[0]
        return record

    def exec(self, service: str, *argv: str, check: bool = True) -> str:
        return self.compose("exec", "-T", service, *argv, check=check).stdout

    def sql(self, statement: str) -> str:
        """Run `statement` with the operators' sqlite3 CLI inside the sqlite service."""
        return self.exec("sqlite", "sqlite3", "/data/app.db", statement).strip()

    def volume(self, name: str) -> str:
        return f"{self.project}_{name}"

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 15,
    ) -> Response:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())


def wait_for(predicate: Any, *, attempts: int, pause: float, what: str) -> Any:
    """Poll `predicate` a bounded number of times; the last falsy result fails the test."""
    result = None
    for _ in range(attempts):
        result = predicate()
        if result:
            return result
        time.sleep(pause)
    raise AssertionError(f"gave up waiting for {what} after {attempts} attempts: {result!r}")
