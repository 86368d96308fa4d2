"""One drill's own prod stack: started, attacked over loopback, always removed.

Wraps harness.stack (the way the container tests drive the kit's compose files) with
what every drill needs: a project named `drills-<name>-<pid>`, a free 127.0.0.1 port, a
prod secret file owned by UID 10001 with mode 0600, the image from build/image.json, and
teardown with volumes even when the drill crashes.

    from drills import stack

    def run(context: DrillContext) -> DrillOutcome:
        outcome = DrillOutcome(name="mine")
        with stack.running(context, "mine", BACKUP_INTERVAL="3") as prod:
            answer = prod.http.request("POST", "/api/notes", {"title": "t"})
            assert answer.status == 201 and answer.json()["id"]
            raw = prod.http.send("POST", "/api/notes", b'{"title": "\\xff"}')
            ok = prod.integrity_check() == "ok"  # sqlite3 inside the sqlite service
            prod.exec("app", "id", "-u")         # `compose exec -T app id -u`
        return outcome

`running(...)` takes extra compose variables as keywords (they win over .env.prod); for a
compose override file pass `COMPOSE_FILE=stack.compose_files(path)` (the disk_full drill
puts app_data on tmpfs that way).
Each thread should make its own `Client` (`prod.client()`): it keeps one connection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drills.outcome import DrillContext
from harness import secret_files
from harness.http import Client as Client
from harness.http import Response as Response
from harness.ports import free_port
from harness.stack import Stack
from kit import console

# The Problem schema's required fields in webapp/openapi.json.
PROBLEM_FIELDS = {"type", "title", "status", "detail", "request_id"}
BASE_FILES = ["compose/compose.yaml", "compose/compose.prod.yaml"]


def is_problem(answer: Response) -> bool:
    """An error answer as openapi.json promises it: problem+json with the Problem schema's
    required fields and the answer's own status inside."""
    kind = next((v for k, v in answer.headers.items() if k.lower() == "content-type"), "")
    if not kind.startswith("application/problem+json"):
        return False
    try:
        document = answer.json()
    except ValueError:
        return False
    return (
        isinstance(document, dict)
        and document.keys() >= PROBLEM_FIELDS
        and document["status"] == answer.status
    )


@dataclass
class DrillStack:
    """A started prod stack: compose, exec, HTTP and the database's integrity check."""

    compose: Stack
    http: Client

    @property
    def port(self) -> int:
        return self.compose.port

    @property
    def project(self) -> str:
        return self.compose.project

    def client(self, timeout: float = 15.0) -> Client:
        return Client(self.port, timeout)

    def exec(self, service: str, *argv: str, check: bool = True) -> str:
        return self.compose.exec(service, *argv, check=check)

    def integrity_check(self) -> str:
        """`PRAGMA integrity_check` by the operators' sqlite3 CLI: "ok" or what is wrong."""
        result = self.compose.compose(
            "exec", "-T", "sqlite", "sqlite3", "/data/app.db", "PRAGMA integrity_check;",
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            return f"sqlite3 exited {result.returncode}: {result.stderr.strip()[-200:]}"
        return result.stdout.strip()

    def up(self, *services: str) -> None:
        self.compose.up(*services)


class StackError(Exception):
    """The stack did not come up: compose's last line and each service's last log lines."""

    def __init__(self, prod: Stack, error: AssertionError) -> None:
        said = [line for line in str(error).splitlines() if line.strip()]
        logs = prod.compose("logs", "--no-color", "--tail", "3", check=False).stdout
        tail = " | ".join(line.strip() for line in logs.splitlines()[-6:])
        super().__init__(
            f"prod stack {prod.project} did not come up: {said[-1] if said else error}; "
            f"last log lines: {tail or '(none)'}"
        )


def compose_files(*extra: Path) -> str:
    """A COMPOSE_FILE value: the prod files, then `extra` overrides (absolute paths)."""
    return ":".join([*BASE_FILES, *(str(path.resolve()) for path in extra)])


def project_name(name: str) -> str:
    return f"drills-{name.replace('_', '-')}-{os.getpid()}"


@contextmanager
def running(
    context: DrillContext,
    name: str,
    **variables: str,
) -> Iterator[DrillStack]:
    """Start the prod stack for drill `name`, yield it, and remove it with its volumes."""
    key = secret_files.write(context.scratch / "secret_key")
    settings = {"WEBAPP_SECRET_KEY_FILE": str(key), **variables}
    prod = Stack("prod", project_name(name), free_port(), context.image, settings)
    started = DrillStack(prod, Client(prod.port))
    try:
        with console.step(f"Starting prod stack {prod.project} on 127.0.0.1:{prod.port}"):
            try:
                prod.up()
            except AssertionError as error:
                raise StackError(prod, error) from None
        yield started
    finally:
        started.http.close()
        prod.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
