"""The compose configuration of both environments, as `docker compose config` renders it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from harness.commands import run
from harness.repo import ROOT

PLAIN_LINE = re.compile(r"^[A-Z][A-Z0-9_]*=[^\"'`$\\]*$")


def seconds(duration: str) -> float:
    """A Compose duration such as '30s' or '1m30s' in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(number) * units[unit] for number, unit in parts)


def rendered(environment: str, **variables: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "WEBAPP_SECRET_KEY_FILE"}
    env.update(variables)
    output = run(
        ["docker", "compose", "--env-file", f".env.{environment}", "config", "--format", "json"],
        env=env,
    ).stdout
    config: dict[str, Any] = json.loads(output)
    return config


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_env_file_is_plain_key_value(environment: str) -> None:
    lines = (ROOT / f".env.{environment}").read_text().splitlines()
    entries = [line for line in lines if line.strip() and not line.startswith("#")]
    assert entries
    assert [line for line in entries if not PLAIN_LINE.match(line)] == []
    keys = {line.split("=", 1)[0] for line in entries}
    assert {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "WEBAPP_PORT", "APP_ENV"} <= keys
    assert not {key for key in keys if "SECRET" in key}, "env files hold configuration only"


def test_dev_config_validates_with_bind_mounted_source_and_reload() -> None:
    config = rendered("dev")
    assert config["name"] == "webapp-dev"
    app = config["services"]["app"]
    assert app["environment"]["APP_ENV"] == "dev"
    assert app["environment"]["GUNICORN_RELOAD"] == "1"
    binds = {v["target"]: v for v in app["volumes"] if v["type"] == "bind"}
    assert Path(binds["/app/webapp"]["source"]) == ROOT / "webapp"
    assert app["ports"][0]["host_ip"] == "127.0.0.1"
    assert app["ports"][0]["published"] == "8081"
    # The dev URL is the proxy's, on loopback and unprivileged ports.
    proxy = config["services"]["proxy"]
    published = {(port["host_ip"], port["published"], port["target"]) for port in proxy["ports"]}
    assert published == {
        ("127.0.0.1", "8080", 8080),
        ("127.0.0.1", "8443", 8443),
        ("127.0.0.1", "9183", 9183),
    }


def test_prod_config_validates_with_hardening(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("x" * 40)
    config = rendered("prod", WEBAPP_SECRET_KEY_FILE=str(secret))
    assert config["name"] == "webapp-prod"
    for name in ("app", "sqlite", "proxy"):
        service = config["services"][name]
        assert service["restart"] == "unless-stopped"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert service["logging"]["driver"] == "json-file"
        assert service["logging"]["options"]["max-size"]
        limits = service["deploy"]["resources"]["limits"]
        assert limits["memory"] and limits["cpus"]
        # Gunicorn's graceful timeout is 20 s; a shorter grace period cuts requests off.
        assert seconds(service["stop_grace_period"]) >= 20
    app = config["services"]["app"]
    assert app["environment"]["SECRET_KEY_FILE"] == "/run/secrets/secret_key"
    assert "SECRET_KEY" not in app["environment"]
    assert config["secrets"]["secret_key"]["file"] == str(secret)
    assert app["ports"][0]["host_ip"] == "127.0.0.1"
    # The sqlite service gets the replica's SSH key only, never the app's key.
    sqlite = config["services"]["sqlite"]
    assert [secret["source"] for secret in sqlite["secrets"]] == ["replica_key"]
    assert sqlite["environment"]["REPLICA_KEY_FILE"] == "/run/secrets/replica_key"
    assert config["secrets"]["replica_key"]["file"] == "/dev/null"
    # The proxy is the public door: 80 and 443 on every interface, its own metrics on
    # loopback only, and no key.
    proxy = config["services"]["proxy"]
    published = {(port["host_ip"], port["published"], port["target"]) for port in proxy["ports"]}
    assert published == {
        ("0.0.0.0", "80", 80),
        ("0.0.0.0", "443", 443),
        ("127.0.0.1", "9182", 9182),
    }
    replicator = config["services"]["sqlite"]["ports"]
    assert [(port["host_ip"], port["published"]) for port in replicator] == [("127.0.0.1", "9184")]
    assert "secrets" not in proxy
    assert proxy["sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "0"}


def test_both_services_share_the_image_and_the_data_volume() -> None:
    services = rendered("dev")["services"]
    assert services["app"]["image"] == services["sqlite"]["image"]
    for name in ("app", "sqlite"):
        mounts = {v["target"]: v for v in services[name]["volumes"]}
        assert mounts["/data"]["type"] == "volume"
        assert mounts["/data"]["source"] == "app_data"
    assert services["app"]["depends_on"]["sqlite"]["condition"] == "service_healthy"
    # One service builds, the other reuses: `up --build` builds the image once.
    assert "build" in services["app"] and "build" not in services["sqlite"]
    assert services["sqlite"]["pull_policy"] == "never"


def test_prod_without_a_secret_file_refuses_with_how_to_fix() -> None:
    env = {k: v for k, v in os.environ.items() if k != "WEBAPP_SECRET_KEY_FILE"}
    env["COMPOSE_PROJECT_NAME"] = "webapp-test-nosecret"
    result = run(
        ["docker", "compose", "--env-file", ".env.prod", "up", "--detach", "--no-build"],
        env=env,
        check=False,
    )
    assert result.returncode != 0
    assert "WEBAPP_SECRET_KEY_FILE" in result.stderr
    assert "export WEBAPP_SECRET_KEY_FILE=" in result.stderr
    listed = run(["docker", "ps", "--all", "--quiet", "--filter",
                  "label=com.docker.compose.project=webapp-test-nosecret"]).stdout  # fmt: skip
    assert listed.strip() == "", "nothing may start without the secret"
