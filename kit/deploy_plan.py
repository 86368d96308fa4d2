"""The deploy's inputs, checked on the controller before any host is contacted.

    python -m kit.deploy_plan check --env prod --groups dev,prod
    python -m kit.deploy_plan render --env prod --image TAG --set KEY=VALUE ... --out PATH

`check` validates the environment name, its env file and the build record, and prints the
plan as JSON. `render` writes the env file one host gets (the repository's file with the
built image pinned and the host's overrides) and prints its hash and the compose files'
hash; the deploy compares live hosts with exactly these values.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from kit import env_file
from kit.console import KitError
from kit.docker_cli import docker, inspect_image
from kit.image import load_record

HEADS = Path("build/deploy/schema-heads.json")
REQUIRED_KEYS = ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "WEBAPP_PORT", "APP_ENV")
# Values the containers would refuse at start (webapp/settings.py, gunicorn.conf.py, the
# `db serve` options): refused here instead, before a host is touched. Whole-number
# ranges as (minimum, maximum); a tuple of strings lists the allowed words.
VALUE_RULES: dict[str, tuple[int, int] | tuple[str, ...]] = {
    "APP_ENV": ("dev", "prod"),
    "LOG_LEVEL": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "WEBAPP_PORT": (1, 65535),
    "GUNICORN_WORKERS": (1, 64),
    "GUNICORN_THREADS": (1, 256),
    "GUNICORN_TIMEOUT": (1, 3600),
    "GUNICORN_GRACEFUL_TIMEOUT": (1, 3600),
    "GUNICORN_MAX_REQUESTS": (0, 10_000_000),
    "BACKUP_INTERVAL": (1, 10_000_000),
    "BACKUP_KEEP": (1, 10_000),
    "LOG_MAX_FILES": (1, 1000),
}
# Values Compose or the engine would refuse on the host, in the forms they accept.
_SIZE = (r"\d+(\.\d+)? ?[kKmMgG]?[iI]?[bB]?", "a size such as 512M")
_DURATION = (r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+", "a duration such as 5s or 1m30s")
_CPUS = (r"\d*\.?\d+", "a number of CPUs such as 1 or 0.5")
VALUE_PATTERNS = {
    "APP_CPUS": _CPUS,
    "SQLITE_CPUS": _CPUS,
    "APP_MEMORY": _SIZE,
    "SQLITE_MEMORY": _SIZE,
    "LOG_MAX_SIZE": _SIZE,
    "APP_HEALTHCHECK_INTERVAL": _DURATION,
    "SQLITE_HEALTHCHECK_INTERVAL": _DURATION,
}


def bad_value(key: str, value: str) -> str | None:
    """Why `value` is refused for `key`, or None; an empty value means compose's default."""
    if value == "":
        return None
    if key in VALUE_PATTERNS:
        pattern, expected = VALUE_PATTERNS[key]
        return None if re.fullmatch(pattern, value) else expected
    if key == "WEBAPP_BIND_ADDRESS":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "an IP address such as 127.0.0.1 (Compose publishes on addresses only)"
        return None
    rule = VALUE_RULES.get(key)
    if rule is None:
        return None
    if isinstance(rule[0], str):
        if key == "LOG_LEVEL":
            value = value.upper()
        return None if value in rule else f"one of: {', '.join(map(str, rule))}"
    low, high = rule
    assert isinstance(low, int) and isinstance(high, int)
    if value.isdigit() and low <= int(value) <= high:
        return None
    return f"a whole number from {low} to {high}"


def environments() -> list[str]:
    """Every environment the repository defines: one .env.<name> file each."""
    return sorted(path.name.removeprefix(".env.") for path in Path().glob(".env.*"))


def check(environment: str, groups: list[str], build_record: Path) -> dict[str, Any]:
    valid = [name for name in environments() if name in groups]
    if environment not in valid:
        raise KitError(
            f"env={environment} is not an environment of this project; "
            f"use one of: {', '.join(valid)} (each needs a .env.<name> file and an "
            "inventory group)"
        )
    path = Path(f".env.{environment}")
    values = env_file.parse(path)
    missing = [key for key in REQUIRED_KEYS if not values.get(key)]
    if missing:
        raise KitError(f"{path} lacks {', '.join(missing)}; add them (see .env.prod)")
    for key, value in values.items():
        expected = bad_value(key, value)
        if expected is not None:
            raise KitError(f"{path}: {key}={value!r} is not valid; set it to {expected}")
    compose_files = values["COMPOSE_FILE"].split(":")
    absent = [name for name in compose_files if not Path(name).is_file()]
    if absent:
        raise KitError(f"{path}: COMPOSE_FILE names {', '.join(absent)}, which do not exist")
    record = load_record(build_record)
    image = inspect_image(record["image"])
    if image is None or image["Id"] != record["id"]:
        raise KitError(
            f"{record['image']} from {build_record} is not the built image "
            f"{record['id'][:19]} on this machine; run `nox -s build` again"
        )
    head = schema_head(record["image"], record["id"])
    return {
        "env": environment,
        "env_file": str(path),
        "values": values,
        "compose_files": compose_files,
        # What a host's installed copies must hash to; equal ones are not sent again.
        "compose_sha256": {
            name: hashlib.sha256(Path(name).read_bytes()).hexdigest() for name in compose_files
        },
        "project": values["COMPOSE_PROJECT_NAME"],
        "port": values["WEBAPP_PORT"],
        "secret_required": values["APP_ENV"] == "prod",
        "image": record["image"],
        "image_id": record["id"],
        "version": record.get("version", "unknown"),
        "revision": record.get("revision", "unknown"),
        "schema_head": head,
    }


def schema_head(image: str, image_id: str, cache: Path = HEADS) -> str:
    """The schema revision the image's code expects; asked once per image ID."""
    known: dict[str, str] = json.loads(cache.read_text()) if cache.is_file() else {}
    if image_id not in known:
        known[image_id] = docker(
            "run", "--rm", "--network", "none", "-e", "DATABASE_URL=sqlite:////tmp/plan.db",
            image, "python", "-m", "webapp", "db", "head",
        ).stdout.strip()  # fmt: skip
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known, indent=2) + "\n")
    return known[image_id]


def render(environment: str, image: str, overrides: dict[str, str], out: Path) -> dict[str, Any]:
    values = env_file.parse(Path(f".env.{environment}"))
    values["WEBAPP_IMAGE"] = image
    values.update(overrides)
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    # With no shell variables leaking in: the env file alone decides the config, here
    # and on the host. Rendering it also proves Compose accepts the env file.
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}
    services = docker("compose", "--env-file", str(out), "config", "--services", env=clean)
    return {
        "path": str(out.resolve()),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "compose_files_sha256": compose_files_digest(values["COMPOSE_FILE"].split(":")),
        # The services a healthy host runs; the deploy skips `compose up` only when each
        # of these runs healthy on the planned image and nothing else does.
        "services": sorted(services.stdout.split()),
    }


def compose_files_digest(names: list[str]) -> str:
    """One hash for the compose files, byte for byte, in COMPOSE_FILE order.

    The host computes the same with `sha256sum FILES | sha256sum`. It hashes the files,
    not `docker compose config`, whose rendering differs between Compose versions; that
    the running containers follow these files is checked on the host by Compose itself.
    """
    lines = "".join(
        f"{hashlib.sha256(Path(name).read_bytes()).hexdigest()}  {name}\n" for name in names
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def _assignment(text: str) -> tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.deploy_plan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check", help="validate and print the plan")
    checking.add_argument("--env", required=True)
    checking.add_argument("--groups", required=True, help="inventory groups, comma-separated")
    checking.add_argument("--build-record", type=Path, default=Path("build/image.json"))
    rendering = commands.add_parser("render", help="write one host's env file")
    rendering.add_argument("--env", required=True)
    rendering.add_argument("--image", required=True)
    rendering.add_argument("--set", type=_assignment, action="append", default=[])
    rendering.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "check":
            groups = [name for name in arguments.groups.split(",") if name]
            result = check(arguments.env, groups, arguments.build_record)
        else:
            result = render(arguments.env, arguments.image, dict(arguments.set), arguments.out)
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
