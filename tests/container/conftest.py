"""Fixtures for tests against real containers on the local Docker engine.

Every stack a test starts gets its own compose project name and free loopback port, so
tests never collide with a developer's running stacks or with each other, and every
stack is removed with its volumes at the end. The image under test is the one recorded
by `nox -s build` in build/image.json, pinned by tag and checked by ID.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import secret_files
from harness.commands import run
from harness.ports import free_port
from harness.repo import BUILD_RECORD, ROOT
from harness.stack import Stack


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.container)


class StackFactory:
    def __init__(self, image: str) -> None:
        self.image = image
        self.made: list[Stack] = []

    def __call__(self, environment: str, name: str, **variables: str) -> Stack:
        project = f"webapp-test-{name}-{uuid.uuid4().hex[:6]}"
        stack = Stack(environment, project, free_port(), self.image, dict(variables))
        self.made.append(stack)
        return stack

    def cleanup(self) -> None:
        for stack in self.made:
            stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


@pytest.fixture(scope="session")
def build_record() -> dict[str, Any]:
    if not BUILD_RECORD.is_file():
        pytest.fail(f"{BUILD_RECORD.relative_to(ROOT)} is missing: run `nox -s build` first")
    record: dict[str, Any] = json.loads(BUILD_RECORD.read_text())
    found = run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", record["image"]], check=False
    )
    if found.returncode != 0 or found.stdout.strip() != record["id"]:
        pytest.fail(
            f"image {record['image']} ({record['id'][:19]}) from build/image.json is not in the "
            "local engine: run `nox -s build` first"
        )
    return record


# Per module: a module's stacks go down when it ends, so the stacks of one file (each with
# 1 s healthchecks) never load the machine under the next files and the deploy tests.
@pytest.fixture(scope="module")
def stacks(build_record: dict[str, Any]) -> Iterator[StackFactory]:
    factory = StackFactory(build_record["image"])
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def secret_value() -> str:
    return secret_files.new_key()


@pytest.fixture(scope="session")
def secret_file(tmp_path_factory: pytest.TempPathFactory, secret_value: str) -> Path:
    """A prod key file as the README tells operators to make it: owned by 10001, 0600."""
    return secret_files.write(tmp_path_factory.mktemp("secret") / "secret_key", secret_value)
