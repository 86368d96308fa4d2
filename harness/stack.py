"""One compose project of the kit, driven as a user drives it: up, down, exec, sql, HTTP.

Every stack gets the project name and 127.0.0.1 port its caller picks (a test's unique
name, a drill's `drills-<name>-<pid>`), so runs never collide with each other or with a
developer's own stacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import http
from harness.commands import TIMEOUT_S, run
from harness.http import Response
from harness.ports import free_port
from harness.repo import RELEASE_SCRIPT, ROOT

# Short intervals make health (and so each kill cycle) quick; production keeps 5 s.
FAST_HEALTH = "2s"


@dataclass
class Stack:
    """One compose project of the kit, driven exactly as a user would drive it."""

    environment: str
    project: str
    port: int
    image: str
    variables: dict[str, str] = field(default_factory=dict)
    # The checkout the compose files are used from; a copy lets a test edit the source.
    checkout: Path = ROOT
    metrics_port: int = field(default_factory=free_port)
    # The proxy's ports, published on 127.0.0.1 like the app's.
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    # The proxy's and the replicator's own metrics, on 127.0.0.1.
    proxy_metrics_port: int = field(default_factory=free_port)
    replica_metrics_port: int = field(default_factory=free_port)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("WEBAPP_SECRET_KEY_FILE", None)
        env.update(
            COMPOSE_PROJECT_NAME=self.project,
            WEBAPP_PORT=str(self.port),
            WEBAPP_METRICS_PORT=str(self.metrics_port),
            WEBAPP_BIND_ADDRESS="127.0.0.1",
            WEBAPP_HTTP_PORT=str(self.http_port),
            WEBAPP_HTTPS_PORT=str(self.https_port),
            WEBAPP_PROXY_METRICS_PORT=str(self.proxy_metrics_port),
            WEBAPP_REPLICA_METRICS_PORT=str(self.replica_metrics_port),
            WEBAPP_PUBLIC_ADDRESS="127.0.0.1",
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
            "up", "--detach", "--wait", "--wait-timeout", str(TIMEOUT_S), "--no-build",
            *services,
        )  # fmt: skip

    def release(self, **variables: str) -> subprocess.CompletedProcess[str]:
        """Bring the stack to `variables` as a deploy does on a host (the zero-downtime
        switch when the app changes); the answer holds the script's exit and output."""
        self.variables.update(variables)
        env = {
            **self.env(),
            "WEBAPP_ENV_FILE": f".env.{self.environment}",
            "WEBAPP_PROJECT": self.project,
            "WEBAPP_WAIT_TIMEOUT": str(TIMEOUT_S),
        }
        return run(["sh", str(RELEASE_SCRIPT)], env=env, check=False, cwd=self.checkout)

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

    def request(self, method: str, path: str, payload: Any = None, **options: Any) -> Response:
        """One request to the app (see harness.http.once); 15 s unless `timeout` says."""
        return http.once(self.port, method, path, payload, **{"timeout": 15, **options})


def wait_for(predicate: Any, *, attempts: int, pause: float, what: str) -> Any:
    """Poll `predicate` a bounded number of times; the last falsy result fails the test."""
    result = None
    for _ in range(attempts):
        result = predicate()
        if result:
            return result
        time.sleep(pause)
    raise AssertionError(f"gave up waiting for {what} after {attempts} attempts: {result!r}")
