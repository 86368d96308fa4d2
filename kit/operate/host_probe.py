"""What one server runs, read on the server itself and printed as one JSON object.

`python -m kit.operate status` sends this file over SSH to the server's own python3
(which Ansible needs there anyway) as `python3 - APP_DIR ENV`, so that one round trip
and a handful of local docker calls answer every field. The containers are read from the
engine's socket, as `docker inspect` reads them: each docker CLI started costs about
40 ms of CPU, which a busy server feels. Standard library only, and
nothing here fails: what cannot be read is reported as missing, for the controller to
judge.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

# Bounds: a probe must answer well within the controller's per-host timeout.
COMMAND_TIMEOUT_S = 8
HTTP_TIMEOUT_S = 3
# Where the engine listens when DOCKER_HOST does not say otherwise, as for the docker CLI.
DOCKER_SOCKET = "/var/run/docker.sock"
# The sqlite service's files, as compose/compose.yaml mounts them.
DATABASE = "/data/app.db"
BACKUPS = "/backups"
# One docker exec for the three things only the sqlite container can see; each part's
# answer follows a marker line, so one that fails leaves the others readable.
SCHEMA_SQL = "SELECT version_num FROM alembic_version"
SQLITE_QUERY = (
    f"echo @schema; sqlite3 -readonly {DATABASE} '{SCHEMA_SQL}'"
    f" 2>/dev/null; echo @free; df -Pk /data 2>/dev/null | tail -n 1;"
    f" echo @backup; ls -1 {BACKUPS} 2>/dev/null | grep '^app-.*[.]db$' | tail -n 1"
)


def command(*argv: str) -> tuple[int, str]:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return 127, str(error)
    return done.returncode, done.stdout if done.returncode == 0 else done.stderr


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def env_file(path: str) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, sign, value = line.strip().partition("=")
                if sign and not key.startswith("#"):
                    values[key] = value
    except OSError:
        pass
    return values


class EngineConnection(http.client.HTTPConnection):
    """HTTP to the Docker engine over its unix socket."""

    def __init__(self, socket_path: str) -> None:
        super().__init__("localhost", timeout=COMMAND_TIMEOUT_S)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(COMMAND_TIMEOUT_S)
        self.sock.connect(self.socket_path)


def engine_get(path: str) -> Any:
    """GET PATH of the engine's API as JSON; OSError when it cannot be asked so."""
    where = os.environ.get("DOCKER_HOST") or f"unix://{DOCKER_SOCKET}"
    if not where.startswith("unix://"):
        raise OSError(f"DOCKER_HOST={where} is not a unix socket")
    connection = EngineConnection(where.removeprefix("unix://"))
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        body = answer.read()
    except http.client.HTTPException as error:
        raise OSError(f"the engine's answer is unreadable: {error}") from error
    finally:
        connection.close()
    if answer.status != 200:
        raise OSError(f"the engine answered {answer.status} to {path}")
    return json.loads(body)


def inspected(project: str) -> list[dict[str, Any]]:
    """`docker inspect` of each container of compose PROJECT: from the engine's socket,
    else (another DOCKER_HOST, an unreadable socket) from the docker CLI."""
    label = f"com.docker.compose.project={project}"
    try:
        filters = urllib.parse.quote(json.dumps({"label": [label]}))
        listed = engine_get(f"/containers/json?all=1&filters={filters}")
        return [engine_get(f"/containers/{item['Id']}/json") for item in listed]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    code, ids = command("docker", "ps", "--all", "--quiet", "--filter", f"label={label}")
    if code != 0 or not ids.split():
        return []
    code, output = command("docker", "inspect", *ids.split())
    try:
        return list(json.loads(output)) if code == 0 else []
    except ValueError:
        return []


def containers(project: str) -> list[dict[str, Any]]:
    found = []
    for item in inspected(project):
        state = item.get("State", {})
        environment = dict(
            entry.split("=", 1)
            for entry in item.get("Config", {}).get("Env") or []
            if "=" in entry
        )
        found.append(
            {
                "id": item.get("Id", ""),
                "service": item.get("Config", {})
                .get("Labels", {})
                .get("com.docker.compose.service", "?"),
                "image_id": item.get("Image", ""),
                "state": state.get("Status", "unknown"),
                "health": (state.get("Health") or {}).get("Status", "none"),
                "started_at": state.get("StartedAt", ""),
                "restarts": item.get("RestartCount", 0),
                "version": environment.get("APP_VERSION", "unknown"),
                "revision": environment.get("APP_REVISION", "unknown"),
            }
        )
    return found


def sqlite_facts(container: str) -> dict[str, str]:
    code, output = command("docker", "exec", container, "sh", "-c", SQLITE_QUERY)
    if code != 0:
        return {}
    parts: dict[str, list[str]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("@"):
            current = line[1:]
            parts[current] = []
        elif current:
            parts[current].append(line.strip())
    facts = {}
    if parts.get("schema"):
        facts["schema"] = parts["schema"][-1]
    if parts.get("free"):
        fields = parts["free"][-1].split()
        if len(fields) >= 4 and fields[3].isdigit():
            facts["free_bytes"] = str(int(fields[3]) * 1024)
    if parts.get("backup"):
        facts["last_backup"] = parts["backup"][-1]
    return facts


def ready(settings: dict[str, str]) -> dict[str, Any]:
    address = settings.get("WEBAPP_BIND_ADDRESS", "127.0.0.1")
    if address in ("0.0.0.0", ""):  # noqa: S104 (listening on all: ask over loopback)
        address = "127.0.0.1"
    url = f"http://{address}:{settings.get('WEBAPP_PORT', '8000')}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as answer:
            return {"status": answer.status, "body": json.loads(answer.read() or b"null")}
    except urllib.error.HTTPError as error:
        try:
            body = json.loads(error.read() or b"null")
        except ValueError:
            body = None
        return {"status": error.code, "body": body}
    except (OSError, ValueError) as error:
        return {"status": 0, "error": str(error)}


def probe(app_dir: str, environment: str) -> dict[str, Any]:
    settings = env_file(os.path.join(app_dir, f".env.{environment}"))
    lock_dir = os.path.join(app_dir, "deploy.lock")
    lock = None
    if os.path.isdir(lock_dir):
        lock = read_json(os.path.join(lock_dir, "owner.json")) or {"by": "unknown"}
    report: dict[str, Any] = {
        "installed": bool(settings),
        "docker": shutil.which("docker") is not None,
        "releases": read_json(os.path.join(app_dir, "releases.json")),
        "lock": lock,
        "containers": [],
        "sqlite": {},
        "ready": {},
    }
    project = settings.get("COMPOSE_PROJECT_NAME")
    if project and report["docker"]:
        report["containers"] = containers(project)
        running = [c for c in report["containers"] if c["service"] == "sqlite"]
        if running and running[0]["state"] == "running":
            report["sqlite"] = sqlite_facts(running[0]["id"])
        report["ready"] = ready(settings)
    return report


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], sys.argv[2])))
