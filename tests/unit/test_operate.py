"""The operating commands' own logic, with no server: the inventory as Ansible reads it,
usage errors, and how a probe's report is judged and shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.repo import ROOT
from kit.console import KitError
from kit.operate import inventory, remote, status
from kit.operate.inventory import Host

INVENTORY = """\
[dev]
localhost ansible_connection=local

[prod]
web1 ansible_host=127.0.0.1 ansible_port=2201 ansible_user=root ansible_ssh_private_key_file=/k
web2 ansible_host=10.0.0.2 ansible_user=deploy webapp_app_dir=/srv/webapp
"""


def operate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kit.operate", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("inventory") / "inventory.ini"
    path.write_text(INVENTORY)
    return inventory.read(str(path))


def test_hosts_keep_the_inventorys_connection_and_app_dir(listing) -> None:
    web1, web2 = inventory.hosts("prod", listing)
    assert (web1.address, web1.port, web1.user, web1.key_file) == ("127.0.0.1", 2201, "root", "/k")
    assert web1.app_dir == "/opt/webapp" and web1.privileged
    assert web2.app_dir == "/srv/webapp" and not web2.privileged
    (local,) = inventory.hosts("dev", listing)
    assert local.local and local.app_dir == "/opt/webapp-dev"


def test_an_unknown_environment_or_host_is_refused_naming_the_choices(listing) -> None:
    with pytest.raises(KitError, match=r"no hosts in environment 'staging'.*: dev, prod"):
        inventory.hosts("staging", listing)
    with pytest.raises(KitError, match=r"no host 'web3' here; choose from web1, web2"):
        inventory.select(inventory.hosts("prod", listing), "web3")


def test_ssh_reuses_one_connection_and_sudo_for_another_user(listing) -> None:
    web1, web2 = inventory.hosts("prod", listing)
    argv = remote.command_line(web1, "true")
    assert "ControlMaster=auto" in argv and argv[-2:] == ["127.0.0.1", "true"]
    assert argv[argv.index("-p") + 1] == "2201" and argv[argv.index("-i") + 1] == "/k"
    assert remote.command_line(web2, "true")[-1] == "sudo -n sh -c true"
    (local,) = inventory.hosts("dev", listing)
    assert remote.command_line(local, "echo hi") == ["sh", "-c", "echo hi"]


def test_a_local_host_runs_the_command_here(listing) -> None:
    (local,) = inventory.hosts("dev", listing)
    result = remote.run(local, "echo here; exit 4")
    assert (result.returncode, result.stdout, result.unreachable) == (4, "here\n", False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["restore", "prod", "--host", "web1", "/tmp/app.db"], "BACKUP must be a file of"),
        (["exec", "prod", "--host", "web1", "app"], "name the command to run after the service"),
        (["backup", "prod"], "the following arguments are required: --host"),
        (["status"], "the following arguments are required: ENV"),
        (["status", "prod", "web1"], "unrecognized arguments: web1"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, message) -> None:
    done = operate(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


HOST = Host("web1", "127.0.0.1", 22, "root", None, "", False, "/opt/webapp")
HEALTHY: dict[str, Any] = {
    "installed": True,
    "releases": {"current": {"image": "webapp:1-abc", "id": "sha256:" + "a" * 64},
                 "previous": {"image": "webapp:0-fff"}},
    "lock": None,
    "containers": [
        {"service": "app", "image_id": "sha256:" + "a" * 64, "state": "running",
         "health": "healthy", "started_at": "2026-12-02T16:10:11.5Z", "version": "1",
         "revision": "abc"},
        {"service": "sqlite", "image_id": "sha256:" + "a" * 64, "state": "running",
         "health": "healthy", "started_at": "2026-12-02T16:10:01Z", "version": "1",
         "revision": "abc"},
    ],
    "sqlite": {"schema": "0001", "free_bytes": "5000000000",
               "last_backup": "app-20261202T161500Z.db"},
    "ready": {"status": 200, "body": {
        "status": "ok", "slot": "app",
        "replica": {"lag_s": 0.4, "last_verified_at": "2026-12-02T16:20:00Z"},
    }},
}  # fmt: skip


def test_a_healthy_report_has_every_field_within_80_columns() -> None:
    judged = status.judge(HOST, "prod", HEALTHY)
    assert judged.problems == []
    assert (judged.release, judged.image_id, judged.since) == (
        "1-abc",
        "a" * 12,
        "2026-12-02 16:10Z",
    )
    assert (judged.schema, judged.last_backup, judged.previous) == (
        "0001",
        "2026-12-02 16:15Z",
        "webapp:0-fff",
    )
    assert (judged.slot, judged.lock) == ("app", "—")
    assert (judged.replica_lag_s, judged.replica_verified) == ("0.4", "2026-12-02 16:20Z")
    shown = status.table([judged])
    assert "services app healthy, sqlite healthy\n" in shown and "free 5.0 GB;" in shown
    assert "replica lag 0.4 s; verified 2026-12-02 16:20Z" in shown
    assert all(len(line) <= 80 for line in shown.splitlines())


def test_faults_are_named_with_what_to_do() -> None:
    report = {**HEALTHY, "lock": {"by": "ann@laptop", "since": "2026-12-02T16:00:00Z"},
              "ready": {"status": 503, "body": {"detail": "database is locked"}}}  # fmt: skip
    report["containers"] = [{**HEALTHY["containers"][0], "health": "unhealthy"}]
    judged = status.judge(HOST, "prod", report)
    assert judged.lock == "held by ann@laptop since 2026-12-02 16:00Z"
    assert judged.problems == [
        "web1: service app is unhealthy; see `nox -s logs -- prod app --host web1`",
        "web1: /readyz answered 503 (database is locked)",
    ]
    missing = status.judge(HOST, "prod", {"installed": False})
    assert missing.problems == [
        "web1: no prod stack in /opt/webapp (no .env.prod); deploy it with `nox -s deploy -- prod`"
    ]


def test_an_unreachable_host_is_named(tmp_path: Path) -> None:
    gone = Host("gone", "127.0.0.1", 1, "root", None, "", False, "/opt/webapp")
    (judged,) = status.collect([gone], "prod")
    assert not judged.reachable
    assert judged.problems[0].startswith("gone unreachable over SSH: ")
    assert "gone" in status.table([judged]) and "unreachable" in status.table([judged])
