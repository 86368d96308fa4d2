"""Session fixtures for the deploy tests: a lab of test hosts (harness.lab) with its
inventory, key and prod secret, and the releases the tests deploy.

The hosts live for the whole session and the tests build on each other's state in file
order (deploy, re-run, redeploy, failures), as a real rollout history would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness import hosts
from harness import lab as labs
from harness.lab import Lab, Release
from harness.repo import BUILD_RECORD


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not BUILD_RECORD.is_file():
        pytest.fail("build/image.json is missing; run `nox -s build` before the deploy tests")
    image = json.loads(BUILD_RECORD.read_text())["id"]
    # The prod hosts are Debian 13 with Debian's Compose; the bare ones are fresh Debian 13
    # and Debian 12 servers for provision.yml.
    with labs.running(
        tmp_path_factory.mktemp("lab"), "deploytest", base_image=image,
        prod=["web1", "web2"], bare={"bare1": hosts.DEBIAN_13, "bare12": hosts.DEBIAN_12},
    ) as started:  # fmt: skip
        yield started


@pytest.fixture(scope="session")
def releases(lab: Lab) -> dict[str, Release]:
    """v1 is the real build; v2 a code change on top of it; broken fails its healthcheck;
    crashing exits at start."""
    lab.derive(
        "v2", "COPY change.txt /app/deploy-test-change.txt", {"change.txt": "a code change\n"}
    )
    # The app listens on another port than the one its healthcheck probes.
    lab.derive("broken", "ENV GUNICORN_BIND=0.0.0.0:8001")
    # The app exits at once, every time: its restart policy makes it a crash loop.
    lab.derive("crashing", 'CMD ["python", "-c", "raise SystemExit(3)"]')
    return lab.releases
