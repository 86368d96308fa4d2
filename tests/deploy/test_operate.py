"""The operating commands against the lab's real SSH hosts: status, logs, exec, audit, and
the metrics port that only the server itself reaches.

The module sets the state it needs (both prod hosts on release v1, one deploy) and leaves
it so: a service stopped here is started again before the test ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import http, ports
from harness.lab import Lab
from harness.repo import HOST_COMPOSE, ROOT
from kit import env_file
from webapp.db import schema

pytestmark = pytest.mark.deploy
# Bounds: every command here answers in seconds on a healthy lab.
OPERATE_TIMEOUT_S = 120


def operate(inventory: Path, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m kit.operate VERB prod -i INVENTORY ARGS`, as the nox session runs it."""
    return subprocess.run(
        [sys.executable, "-m", "kit.operate", verb, "prod", "-i", str(inventory), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=OPERATE_TIMEOUT_S, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def deployed(lab: Lab) -> Iterator[Lab]:
    play = lab.deploy(lab.releases["v1"], "-e", "webapp_serial=2", label="deploy-operate")
    assert play.returncode == 0, play.output[-3000:]
    yield lab


def test_status_of_healthy_hosts_shows_every_field(deployed: Lab) -> None:
    done = operate(deployed.inventory, "status")
    assert done.returncode == 0, done.stderr
    release = deployed.releases["v1"]
    facts = json.loads(
        deployed.sh(
            deployed.hosts[0],
            f"docker image inspect -f '{{{{json .Config.Env}}}}' {release.image_id}",
        )
    )
    version = dict(item.split("=", 1) for item in facts)
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    for host in deployed.hosts:
        row = next(line for line in lines if line.startswith(host.name + " "))
        assert f"{version['APP_VERSION']}-{version['APP_REVISION'][:7]}" in row
        assert release.image_id.removeprefix("sha256:")[:12] in row
        assert row.rstrip().endswith(schema.head())
    assert done.stdout.count("services app healthy, proxy healthy, sqlite healthy\n") == 2

    as_json = operate(deployed.inventory, "status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    for entry in json.loads(as_json.stdout):
        assert entry["services"] == {"app": "healthy", "proxy": "healthy", "sqlite": "healthy"}
        assert entry["schema"] == schema.head() and entry["free_bytes"] > 0
        assert entry["lock"] == "—" and entry["problems"] == []
        # The app slot answered between releases, and this stack has no replica.
        assert entry["slot"] == "app" and entry["replica_lag_s"] == "—"


def test_status_names_a_service_stopped_by_hand_and_recovers(deployed: Lab) -> None:
    web2 = deployed.hosts[1]
    web2.sh(f"{HOST_COMPOSE} stop app")
    try:
        done = operate(deployed.inventory, "status")
        assert done.returncode == 1
        assert "error: web2: service app is exited;" in done.stderr
        assert "web1:" not in done.stderr
        one = operate(deployed.inventory, "status", "--host", "web1")
        assert one.returncode == 0, one.stderr
    finally:
        web2.sh(f"{HOST_COMPOSE} up --detach --wait app")
    assert operate(deployed.inventory, "status").returncode == 0


def test_status_names_an_unreachable_host(tmp_path: Path, deployed: Lab) -> None:
    inventory = tmp_path / "inventory.ini"
    closed = ports.free_port()
    inventory.write_text(
        deployed.inventory.read_text()
        + f"\n[prod]\ngone ansible_host=127.0.0.1 ansible_port={closed}\n"
    )
    done = operate(inventory, "status")
    assert done.returncode == 1
    assert "error: gone unreachable over SSH:" in done.stderr
    assert "web1" in done.stdout and "web2" in done.stdout


def test_logs_show_a_request_made_for_the_test(deployed: Lab) -> None:
    web1 = deployed.hosts[0]
    marker = f"operate-{uuid.uuid4().hex}"
    assert deployed.http(web1, "GET", f"/{marker}")[0] == 404
    done = operate(deployed.inventory, "logs", "app", "--grep", marker)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(line.startswith("web1 ") for line in lines), lines
    access = json.loads(lines[-1].split("| ", 1)[1])
    assert access["path"] == f"/{marker}" and access["status"] == 404


def test_exec_passes_output_and_exit_status_through(deployed: Lab) -> None:
    done = operate(
        deployed.inventory, "exec", "--host", "web2", "app",
        "python", "-c", "print('forty', 6 * 7); raise SystemExit(3)",
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stdout.strip() == "forty 42"
    missing = operate(deployed.inventory, "exec", "--host", "web9", "app", "true")
    assert missing.returncode == 1
    assert "no host 'web9' here; choose from web1, web2" in missing.stderr


def test_metrics_are_served_to_the_server_only(deployed: Lab) -> None:
    web1 = deployed.hosts[0]
    assert web1.app_port is not None
    assert http.once(web1.app_port, "GET", "/metrics").status == 404
    # The port the deployed env file sets, on the server's own loopback.
    port = env_file.parse(env_file.path_for("prod"))["WEBAPP_METRICS_PORT"]
    scrape = deployed.sh(
        web1,
        'python3 -c "import urllib.request; '
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())\"",
    )
    assert "webapp_http_requests_total" in scrape and "webapp_build_info" in scrape


def test_audit_lists_the_deploys(deployed: Lab) -> None:
    done = operate(deployed.inventory, "audit", "--json")
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    assert {entry["host"] for entry in entries} == {"web1", "web2"}
    for host in ("web1", "web2"):
        assert any(e["host"] == host and e["result"] == "deployed" for e in entries), entries
    assert operate(deployed.inventory, "audit").stdout.startswith("TIME")
