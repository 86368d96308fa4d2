"""Start, wait for and stop the compose stack of one environment (dev or prod).

The kit drives the same commands a user would type (`docker compose --env-file .env.X
...`) and only adds what a person would otherwise do by hand: pin the image to the one
just built, provide a local prod secret, wait for health, and say where the app is.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from kit import env_file
from kit.console import KitError, detail
from kit.docker_cli import compose

LOCAL_SECRET = Path("secrets/secret_key")
APP_UID = 10001


@dataclass(frozen=True)
class Started:
    url: str
    seconds: float


def local_secret_file() -> Path:
    """The prod secret for a stack on this machine: $WEBAPP_SECRET_KEY_FILE, else a local
    random key in secrets/ (git-ignored), made once and readable only by the app's UID.
    """
    named = os.environ.get("WEBAPP_SECRET_KEY_FILE")
    if named:
        path = Path(named)
        if not path.is_file():
            raise KitError(
                f"WEBAPP_SECRET_KEY_FILE={named} does not exist; point it at a file holding "
                "the prod secret key, or unset it to use a generated local one"
            )
        return path.resolve()
    if not LOCAL_SECRET.is_file():
        LOCAL_SECRET.parent.mkdir(mode=0o700, exist_ok=True)
        descriptor = os.open(LOCAL_SECRET, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        if os.geteuid() == 0:
            os.chown(LOCAL_SECRET, APP_UID, APP_UID)
        else:
            # Without root we cannot hand the file to UID 10001; the directory (0700)
            # still keeps other host users out.
            LOCAL_SECRET.chmod(0o644)
        detail(f"generated a local prod secret key in {LOCAL_SECRET} (git-ignored)")
    return LOCAL_SECRET.resolve()


def compose_environment(
    environment: str, overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """Variables that go on top of the env file for `environment`."""
    extra = dict(overrides or {})
    if environment == "prod" and "WEBAPP_SECRET_KEY_FILE" not in extra:
        extra["WEBAPP_SECRET_KEY_FILE"] = str(local_secret_file())
    return extra


def url(environment: str, overrides: dict[str, str] | None = None) -> str:
    values = env_file.parse(env_file.path_for(environment))
    values.update({k: v for k, v in os.environ.items() if k in values})
    values.update(overrides or {})
    # The stack's door is the proxy: its HTTPS port when it certifies a domain.
    domain = values.get("WEBAPP_DOMAIN", "")
    if domain and values.get("WEBAPP_TLS", "") != "off":
        return f"https://{domain}:{values.get('WEBAPP_HTTPS_PORT') or '443'}/"
    address = values.get("WEBAPP_PUBLIC_ADDRESS") or "0.0.0.0"  # noqa: S104 (a URL, not a bind)
    host = "127.0.0.1" if address == "0.0.0.0" else address  # noqa: S104 (a URL, not a bind)
    return f"http://{host}:{values.get('WEBAPP_HTTP_PORT') or '80'}/"


def up(
    environment: str, *, image: str, overrides: dict[str, str] | None = None, timeout: int = 180
) -> Started:
    """`compose up -d --wait` on `image`; on failure, show which service and its last logs."""
    path = env_file.path_for(environment)
    extra = compose_environment(environment, {"WEBAPP_IMAGE": image, **(overrides or {})})
    started = time.monotonic()
    result = compose(
        "up", "--detach", "--wait", "--wait-timeout", str(timeout), "--no-build",
        env_file=str(path), extra_env=extra, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if result.returncode != 0:
        status = compose("ps", "--all", env_file=str(path), extra_env=extra, check=False)
        logs = compose("logs", "--tail", "15", env_file=str(path), extra_env=extra, check=False)
        for line in (status.stdout + logs.stdout).splitlines()[-40:]:
            detail(f"| {line}")
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise KitError(
            f"the {environment} stack did not come up healthy within {timeout} s: {reason}; "
            f"see the status and logs above, or `docker compose --env-file {path} logs`"
        )
    return Started(url(environment, overrides), seconds)


def down(
    environment: str, *, volumes: bool = False, overrides: dict[str, str] | None = None
) -> None:
    """Stop and remove the containers; the volumes (the data) go only when asked."""
    path = env_file.path_for(environment)
    extra = dict(overrides or {})
    if environment == "prod" and "WEBAPP_SECRET_KEY_FILE" not in extra:
        # `down` interpolates the whole file too; it never reads the secret itself.
        extra["WEBAPP_SECRET_KEY_FILE"] = os.environ.get("WEBAPP_SECRET_KEY_FILE", "/dev/null")
    arguments = ["down", "--remove-orphans"] + (["--volumes"] if volumes else [])
    compose(*arguments, env_file=str(path), extra_env=extra)
