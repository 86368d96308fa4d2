"""Where things are in the checkout, and the facts about the image the harness relies on."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD_RECORD = ROOT / "build" / "image.json"
ANSIBLE_DIR = ROOT / "ansible"
# How the deploy brings a stack to a release on a host, relative to a checkout.
RELEASE_SCRIPT = Path("ansible/roles/webapp/files/release_up.sh")
# The UID and GID the image's `webapp` user runs as (Dockerfile).
APP_UID = 10001


def host_app_dir() -> str:
    """Where the deploy puts the stack on a prod host: the inventory's `webapp_app_dir`."""
    shared = yaml.safe_load((ANSIBLE_DIR / "group_vars" / "all" / "main.yml").read_text())
    return str(shared["webapp_app_dir"])


# Read once: every test host of this checkout gets the same directory.
HOST_APP_DIR = host_app_dir()
# The deployed stack's compose command, from that directory, as an operator types it.
HOST_COMPOSE = f"cd {HOST_APP_DIR} && docker compose --env-file .env.prod"
