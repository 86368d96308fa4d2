"""The operating commands' own logic, with no server: the inventory as Ansible reads it,
usage errors, and how a probe's report is judged and shown."""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from harness.repo import ROOT
from kit.console import KitError
from kit.operate import host_probe, inventory, remote, status
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


INSPECTED = {
    "Id": "c1", "Image": "sha256:" + "b" * 64, "RestartCount": 2,
    "State": {"Status": "running", "Health": {"Status": "healthy"},
              "StartedAt": "2026-12-02T16:10:11Z"},
    "Config": {"Labels": {"com.docker.compose.service": "app"},
               "Env": ["APP_VERSION=1.2", "APP_REVISION=abcdef0", "PATH=/bin"]},
}  # fmt: skip


class EngineServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    asked: list[str]


class EngineHandler(BaseHTTPRequestHandler):
    """The two answers of the Docker engine's API that the probe reads."""

    server: EngineServer

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        url = urllib.parse.urlsplit(self.path)
        body: Any = {"message": "no such path"}
        status_code = 404
        if url.path == "/containers/json":
            label = json.loads(urllib.parse.parse_qs(url.query)["filters"][0])["label"]
            body, status_code = ([{"Id": "c1"}] if label == ["com.docker.compose.project=p"]
                                 else []), 200  # fmt: skip
        elif url.path == "/containers/c1/json":
            body, status_code = INSPECTED, 200
        data = json.dumps(body).encode()
        self.send_response(status_code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineServer]:
    """A server on a unix socket that answers as the engine does, named by DOCKER_HOST."""
    # Short: a unix socket's path must stay under about 100 bytes.
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        path = f"{directory}/engine.sock"
        with EngineServer(path, EngineHandler) as server:
            server.asked = []
            monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            yield server
            server.shutdown()


def test_the_probe_reads_the_containers_from_the_engines_socket(engine: EngineServer) -> None:
    assert host_probe.containers("p") == [
        {"id": "c1", "service": "app", "image_id": "sha256:" + "b" * 64, "state": "running",
         "health": "healthy", "started_at": "2026-12-02T16:10:11Z", "restarts": 2,
         "version": "1.2", "revision": "abcdef0"},
    ]  # fmt: skip
    assert [urllib.parse.urlsplit(path).path for path in engine.asked] == [
        "/containers/json",
        "/containers/c1/json",
    ]
    assert host_probe.containers("other") == []
    with pytest.raises(OSError, match="the engine answered 404 to /nowhere"):
        host_probe.engine_get("/nowhere")


def test_another_docker_host_is_left_to_the_docker_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    with pytest.raises(OSError, match=r"DOCKER_HOST=tcp://127\.0\.0\.1:1 is not a unix socket"):
        host_probe.engine_get("/containers/json")
    # The CLI cannot reach that engine either: no containers, and no exception.
    assert host_probe.containers("p") == []


def test_a_missing_inventory_file_is_named_not_read_as_no_hosts(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.ini"
    with pytest.raises(KitError, match=f"inventory {missing} does not exist; give -i"):
        inventory.read(str(missing))
    done = operate("status", "prod", "-i", str(missing))
    assert done.returncode != 0
    assert f"inventory {missing} does not exist" in done.stderr
