"""The deploy's inputs, checked on the controller before any host is contacted.

    python -m kit.deploy_plan check --env prod --groups dev,prod \
        [--hosts '{"web1": {OVERRIDES}, ...}'] [--secret-stdin < KEY]
    python -m kit.deploy_plan render --env prod --image TAG --set KEY=VALUE ... --out PATH
    python -m kit.deploy_plan secret < KEY

`check` validates the environment name, its env file and the build record, refuses two
of the hosts that would replicate to one replica and, with --secret-stdin, a prod key the
app would refuse, and prints the plan as JSON: the whole preflight in one Python start.
`render` writes the env file one host gets (the repository's file with the built image
pinned and the host's overrides) and prints its hash and the compose files' hash; the
deploy compares live hosts with exactly these values. `secret` judges a key alone, to
vet one before it goes into the vault. No command ever prints the key.
The rules of every value are in webapp/settings.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import posixpath
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kit import env_file
from kit.console import KitError
from kit.docker_cli import docker, inspect_image
from kit.image import PROXY_TAG, load_record
from webapp import settings

HEADS = Path("build/deploy/schema-heads.json")
# What an env file may hold: the variables compose reads (webapp/settings.py).
ENV_FILE_VARIABLES = {name: v for name, v in settings.VARIABLES.items() if "compose" in v.readers}
REQUIRED_KEYS = tuple(name for name, v in ENV_FILE_VARIABLES.items() if "deploy" in v.required)
# Published on the host's 127.0.0.1 side by side, so no two may share a port.
PUBLISHED_PORTS = (
    "WEBAPP_PORT",
    "WEBAPP_METRICS_PORT",
    "WEBAPP_PROXY_METRICS_PORT",
    "WEBAPP_REPLICA_METRICS_PORT",
)


def bad_value(key: str, value: str) -> str | None:
    """What an env file's `value` for `key` should be instead, or None when it is good.

    The rules are the ones the containers, Compose and the engine apply on the host; an
    empty value means compose's default where there is one.
    """
    variable = ENV_FILE_VARIABLES[key]
    if value == "" and variable.default is not None:
        return None
    if value != "" and variable.rule.problem(value) is None:
        return None
    return variable.rule.expected


def replica_problem(where: str, values: dict[str, str]) -> None:
    """Refuse an sftp:// REPLICA_URL without its pinned host key."""
    if values.get("REPLICA_URL", "").startswith("sftp://") and not values.get(
        "WEBAPP_REPLICA_HOST_KEY"
    ):
        raise KitError(
            f"{where}: REPLICA_URL is sftp:// but WEBAPP_REPLICA_HOST_KEY is not set; add the "
            "server's key line (`ssh-keyscan -t ed25519 HOST`), an unpinned server is refused"
        )


def replica_identity(url: str) -> str:
    """One spelling for every way of writing one replica's URL: scheme and host name in
    lower case, SFTP's default port 22 dropped, the path without `.`, doubled or trailing
    slashes."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and not (scheme == "sftp" and port == 22):
        host = f"{host}:{port}"
    user = f"{parts.username}@" if parts.username else ""
    path = posixpath.normpath("/" + parts.path.lstrip("/")) if parts.path.strip("/") else "/"
    return f"{scheme}://{user}{host}{path}"


def shared_replicas(urls: list[tuple[str, str]]) -> None:
    """Refuse two hosts whose REPLICA_URLs name one replica: two replicators writing one
    replica each take it for their own, and a restore from it gets neither database."""
    first: dict[str, tuple[str, str]] = {}
    for host, url in urls:
        if not url:
            continue
        identity = replica_identity(url)
        if identity in first:
            other, other_url = first[identity]
            same = url if url == other_url else f"{other_url} and {url}"
            raise KitError(
                f"{other} and {host} would both replicate to {same}; give each host its own "
                "REPLICA_URL in webapp_env_overrides (inventory host variables), one "
                "replicator per replica"
            )
        first[identity] = (host, url)


def secret_problem(key: str) -> str | None:
    """Why the prod key would be refused by the app (never showing it), or None."""
    if not key:
        return "is not set"
    return settings.VARIABLES["WEBAPP_SECRET_KEY"].rule.problem(key)


def environments() -> list[str]:
    """Every environment the repository defines: one .env.<name> file each."""
    return sorted(path.name.removeprefix(".env.") for path in Path().glob(".env.*"))


def check(
    environment: str,
    groups: list[str],
    build_record: Path,
    hosts: dict[str, dict[str, Any]] | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    """The plan of a deploy to `hosts` (each with its webapp_env_overrides), refused with
    the first problem found; `secret`, when given, is judged if the environment is prod."""
    valid = [name for name in environments() if name in groups]
    if environment not in valid:
        raise KitError(
            f"env={environment} is not an environment of this project; "
            f"use one of: {', '.join(valid)} (each needs a .env.<name> file and an "
            "inventory group)"
        )
    path = Path(f".env.{environment}")
    values = env_file.parse(path)
    unknown = [key for key in values if key not in ENV_FILE_VARIABLES]
    if unknown:
        raise KitError(
            f"{path}: {', '.join(unknown)} is no setting of the stack; fix the name or remove "
            "the line (the settings: webapp/settings.py, or the README's configuration table)"
        )
    missing = [key for key in REQUIRED_KEYS if not values.get(key)]
    if missing:
        raise KitError(f"{path} lacks {', '.join(missing)}; add them (see .env.prod)")
    for key, value in values.items():
        expected = bad_value(key, value)
        if expected is not None:
            raise KitError(f"{path}: {key}={value!r} is not valid; set it to {expected}")
    taken: dict[str, str] = {}
    for key in PUBLISHED_PORTS:
        port = values.get(key) or ENV_FILE_VARIABLES[key].default or ""
        if port in taken:
            raise KitError(
                f"{path}: {key}={port} is {taken[port]} too; give each published port "
                "a port of its own"
            )
        taken[port] = key
    replica = values.get("REPLICA_URL", "")
    replica_problem(str(path), values)
    # Checked for the whole group, --limit or not: a host left out of a run still runs
    # its replicator.
    replica_urls = {
        host: str(overrides.get("REPLICA_URL", replica))
        for host, overrides in (hosts or {}).items()
    }
    shared_replicas(list(replica_urls.items()))
    secret_required = values["APP_ENV"] == "prod"
    if secret_required and secret is not None:
        problem = secret_problem(secret)
        if problem is not None:
            raise KitError(
                f"The {environment} secret key {problem}; export WEBAPP_SECRET_KEY or set "
                f"vault_webapp_secret_key in group_vars/{environment}/vault.yml"
            )
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
        "port": health_port(values),
        "secret_required": secret_required,
        "replica_url": replica,
        # Each host's REPLICA_URL: its own override, else the env file's.
        "replica_urls": replica_urls,
        "image": record["image"],
        "image_id": record["id"],
        "version": record.get("version", "unknown"),
        "revision": record.get("revision", "unknown"),
        "schema_head": head,
    }


def health_port(values: dict[str, str]) -> str:
    """The host port the deploy's checks reach the app on: the proxy's HTTP port, so that
    they see what clients see. With TLS that port only redirects, and a certificate for
    the domain cannot be checked against 127.0.0.1: the app's own loopback port then."""
    tls = values.get("WEBAPP_TLS") or ("acme" if values.get("WEBAPP_DOMAIN") else "off")
    if tls != "off":
        return values["WEBAPP_PORT"]
    return values.get("WEBAPP_HTTP_PORT") or ENV_FILE_VARIABLES["WEBAPP_HTTP_PORT"].default or "80"


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
    values["WEBAPP_PROXY_IMAGE"] = PROXY_TAG
    for key, value in overrides.items():
        expected = bad_value(key, value) if key in ENV_FILE_VARIABLES else "a setting of the stack"
        if expected is not None:
            raise KitError(
                f"webapp_env_overrides: {key}={value!r} is not valid; set it to {expected}"
            )
    values.update(overrides)
    replica_problem(f"this host's env (.env.{environment} and webapp_env_overrides)", values)
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
        "replica_url": values.get("REPLICA_URL", ""),
        # The host ports the proxy publishes, which the per-client connection cap covers.
        "public_ports": [
            values.get(key) or ENV_FILE_VARIABLES[key].default or ""
            for key in ("WEBAPP_HTTP_PORT", "WEBAPP_HTTPS_PORT")
        ],
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


def _host_overrides(text: str) -> dict[str, dict[str, Any]]:
    try:
        hosts = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"is not JSON ({error})") from None
    if not isinstance(hosts, dict) or not all(isinstance(v, dict) for v in hosts.values()):
        raise argparse.ArgumentTypeError("is not a JSON object of {HOST: {KEY: VALUE}}")
    return hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.deploy_plan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check", help="validate and print the plan")
    checking.add_argument("--env", required=True)
    checking.add_argument("--groups", required=True, help="inventory groups, comma-separated")
    checking.add_argument("--build-record", type=Path, default=Path("build/image.json"))
    checking.add_argument(
        "--hosts", type=_host_overrides, default={},
        help="the group's hosts as JSON: {HOST: its webapp_env_overrides}",
    )  # fmt: skip
    checking.add_argument(
        "--secret-stdin", action="store_true", help="judge the prod key read from stdin"
    )
    rendering = commands.add_parser("render", help="write one host's env file")
    rendering.add_argument("--env", required=True)
    rendering.add_argument("--image", required=True)
    rendering.add_argument("--set", type=_assignment, action="append", default=[])
    rendering.add_argument("--out", type=Path, required=True)
    commands.add_parser("secret", help="judge the prod key on stdin; exit 1 naming the problem")
    arguments = parser.parse_args(argv)
    if arguments.command == "secret":
        problem = secret_problem(sys.stdin.read().strip())
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 1
        return 0
    try:
        if arguments.command == "check":
            groups = [name for name in arguments.groups.split(",") if name]
            secret = sys.stdin.read().strip() if arguments.secret_stdin else None
            result = check(arguments.env, groups, arguments.build_record, arguments.hosts, secret)
        else:
            result = render(arguments.env, arguments.image, dict(arguments.set), arguments.out)
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
