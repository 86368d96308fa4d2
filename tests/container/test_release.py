"""Releases on a running prod stack, as the deploy runs them on a host, under traffic.

A release that replaces the app switches slots behind the proxy: mixed POST/GET/PUT
traffic through the proxy meets no failed request, every acknowledged note is in the
database exactly once, the proxy itself is never restarted, and no stand-in is left. A
release whose app cannot start is refused with the reason, while the old app serves on
untouched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import http
from harness.commands import docker
from harness.stack import Stack, wait_for
from harness.traffic import MixedTraffic


@pytest.fixture(scope="module")
def proxy_tag(build_record: dict[str, Any]) -> Iterator[str]:
    """The proxy's own tag, as a deployed host has it (`webapp:proxy` there)."""
    tag = f"webapp-test-proxy:{uuid.uuid4().hex[:8]}"
    docker("tag", build_record["id"], tag)
    yield tag
    docker("rmi", tag, check=False)


@pytest.fixture(scope="module")
def live(stacks: Any, secret_file: Path, proxy_tag: str) -> Stack:
    stack: Stack = stacks(
        "prod", "release", WEBAPP_SECRET_KEY_FILE=str(secret_file), WEBAPP_PROXY_IMAGE=proxy_tag
    )
    assert stack.release().returncode == 0
    return stack


def test_a_release_switches_slots_with_no_request_failed_and_no_write_lost(live: Stack) -> None:
    app_before = live.container("app")
    proxy_before = live.container("proxy")
    with MixedTraffic(live.http_port) as traffic:
        released = live.release(LOG_LEVEL="DEBUG")
    assert released.returncode == 0, released.stderr[-2000:]
    assert released.stdout.strip().endswith("stack changed")
    record = traffic.record
    assert record.requests > 100, record
    assert record.failed == 0, record.failures
    assert traffic.lost_or_doubled(live.sql(traffic.tally_sql())) == []
    # The app is the new release, the proxy the same process, and the stand-in is gone.
    assert live.container("app") != app_before
    assert live.inspect("app")["Config"]["Env"].count("LOG_LEVEL=DEBUG") == 1
    assert live.container("proxy") == proxy_before
    assert live.compose("ps", "--all", "--quiet", "app_next").stdout.strip() == ""


def test_a_draining_slot_is_sent_no_request(live: Stack) -> None:
    # Both slots up, `app` draining, as in the middle of a switch: for ten rounds of the
    # proxy's health checks, every request must reach `app_next`.
    live.compose("up", "--detach", "--wait", "--no-build", "app_next")
    marker = "/run/webapp/app.draining"
    try:
        live.exec("app", "touch", marker)

        def served_by() -> tuple[int, str | None]:
            answer = http.once(live.http_port, "GET", "/readyz", timeout=5)
            return answer.status, answer.json().get("slot")

        wait_for(lambda: served_by() == (200, "app_next"), attempts=50, pause=0.1,
                 what="the proxy to move to app_next")  # fmt: skip
        seen = []
        for _ in range(100):
            seen.append(served_by())
            time.sleep(0.05)
        assert set(seen) == {(200, "app_next")}, seen
    finally:
        live.exec("app", "rm", "-f", marker)
        live.compose("rm", "--stop", "--force", "app_next")


def test_a_release_changing_nothing_touches_nothing(live: Stack) -> None:
    before = {service: live.container(service) for service in ("sqlite", "app", "proxy")}
    released = live.release()
    assert released.returncode == 0, released.stderr[-2000:]
    assert released.stdout.strip().endswith("stack unchanged")
    assert {service: live.container(service) for service in before} == before


def test_a_release_whose_app_cannot_start_leaves_the_old_one_serving(live: Stack) -> None:
    app_before = live.container("app")
    with MixedTraffic(live.http_port) as traffic:
        # Gunicorn refuses this before any worker starts, so the new app exits at once.
        released = live.release(GUNICORN_WORKERS="0")
    assert released.returncode != 0
    assert "service app_next crash-loops" in released.stderr.strip().splitlines()[-1]
    assert traffic.record.failed == 0, traffic.record.failures
    assert traffic.lost_or_doubled(live.sql(traffic.tally_sql())) == []
    assert live.container("app") == app_before
    assert live.compose("ps", "--all", "--quiet", "app_next").stdout.strip() == ""
    assert live.request("GET", "/readyz").status == 200
    # Put the stack back as the other tests expect it.
    del live.variables["GUNICORN_WORKERS"]
