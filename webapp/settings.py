"""Every environment variable the service reads, in one table, with its validation.

A bad value raises ConfigError with one line that names the variable, shows the value
(never for secrets) and says what is expected. Entry points turn that into a one-line
message on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

APP_ENVS = ("dev", "prod")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SECRET_LENGTH = 32

# The dev override of the compose stack and the docs use these; a prod deployment that
# still carries one of them has skipped the step of making a real key.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "dev",
        "development",
        "insecure",
        "placeholder",
        "dev-insecure-key-do-not-use-in-production",
        "dev-only-insecure-secret-key-not-for-production-use",
    }
)
# Substrings that mark a value as a placeholder whatever surrounds them.
PLACEHOLDER_MARKERS = ("changeme", "change-me", "change_me", "insecure", "placeholder", "example")

DEV_SECRET = "dev-only-insecure-secret-key-not-for-production-use"  # noqa: S105 - refused in prod


class ConfigError(Exception):
    """A configuration value is missing or malformed; str() is the one-line message."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    app_env: str = "dev"
    secret_key: str = DEV_SECRET
    log_level: str = "INFO"
    version: str = "unknown"
    revision: str = "unknown"
    built_at: str = "unknown"

    @property
    def database_path(self) -> Path:
        return database_path(self.database_url)


def database_path(url: str) -> Path:
    """The file path inside a sqlite URL that database_url() has accepted."""
    return Path(make_url(url).database or "")


def _get(environ: Mapping[str, str], name: str, *, required: bool) -> str | None:
    value = environ.get(name)
    if value is None:
        if required:
            raise ConfigError(f"{name} is not set; {_EXPECTED[name]}")
        return None
    if value.strip() == "":
        raise ConfigError(f"{name} is set but empty; {_EXPECTED[name]}")
    return value.strip()


_EXPECTED = {
    "DATABASE_URL": "set it to a SQLite file URL, e.g. sqlite:////data/app.db",
    "APP_ENV": "set it to one of: dev, prod",
    "LOG_LEVEL": f"set it to one of: {', '.join(LOG_LEVELS)} (or unset it for INFO)",
    "SECRET_KEY": f"set SECRET_KEY or SECRET_KEY_FILE to a random key of at least "
    f"{MIN_SECRET_LENGTH} characters, e.g. from `python -c 'import secrets; "
    f"print(secrets.token_urlsafe(48))'`",
    "SECRET_KEY_FILE": "point it at a readable file that holds the key, or unset it",
}


def database_url(environ: Mapping[str, str]) -> str:
    raw = _get(environ, "DATABASE_URL", required=True)
    assert raw is not None
    hint = _EXPECTED["DATABASE_URL"]
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL={raw!r} is not a URL; {hint}") from None
    if url.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise ConfigError(f"DATABASE_URL={raw!r} is not a sqlite URL; {hint}")
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        # Several workers must share one file; an in-memory database would give each its own.
        raise ConfigError(f"DATABASE_URL={raw!r} names no database file; {hint}")
    if url.query:
        raise ConfigError(
            f"DATABASE_URL={raw!r} has query options, which this service sets itself; "
            "remove everything after '?'"
        )
    return raw


def log_level(environ: Mapping[str, str]) -> str:
    raw = _get(environ, "LOG_LEVEL", required=False)
    if raw is None:
        return "INFO"
    if raw.upper() not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={raw!r} is not a log level; {_EXPECTED['LOG_LEVEL']}")
    return raw.upper()


def app_env(environ: Mapping[str, str]) -> str:
    raw = _get(environ, "APP_ENV", required=True)
    assert raw is not None
    if raw not in APP_ENVS:
        raise ConfigError(f"APP_ENV={raw!r} is not a known environment; {_EXPECTED['APP_ENV']}")
    return raw


def secret_key(environ: Mapping[str, str], env: str) -> str:
    key = _get(environ, "SECRET_KEY", required=False)
    path = _get(environ, "SECRET_KEY_FILE", required=False)
    if key is not None and path is not None:
        raise ConfigError(
            "SECRET_KEY and SECRET_KEY_FILE are both set; keep only one (prefer the file)"
        )
    source = "SECRET_KEY"
    if path is not None:
        source = "SECRET_KEY_FILE"
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                f"SECRET_KEY_FILE={path!r} cannot be read ({reason}); "
                "check the path and that the service user may read it"
            ) from None
        if not key:
            raise ConfigError(f"SECRET_KEY_FILE={path!r} is empty; {_EXPECTED['SECRET_KEY']}")
    if key is None:
        if env == "prod":
            raise ConfigError(f"SECRET_KEY is not set and APP_ENV=prod; {_EXPECTED['SECRET_KEY']}")
        return DEV_SECRET
    if env == "prod":
        # Never echo the value: the message ends up in logs.
        lowered = key.lower()
        if lowered in PLACEHOLDER_SECRETS or any(m in lowered for m in PLACEHOLDER_MARKERS):
            raise ConfigError(
                f"{source} holds a placeholder value, refused with APP_ENV=prod; "
                f"{_EXPECTED['SECRET_KEY']}"
            )
        if len(key) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{source} is {len(key)} characters, too short for APP_ENV=prod; "
                f"{_EXPECTED['SECRET_KEY']}"
            )
    return key


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate everything the web app needs."""
    environ = os.environ if environ is None else environ
    env = app_env(environ)
    url = database_url(environ)
    directory = database_path(url).parent
    if not directory.is_dir():
        # The sqlite service creates the file; a web worker that cannot even reach its
        # directory would only ever answer 503, so stop and say why instead.
        raise ConfigError(
            f"DATABASE_URL={url!r} names a file in {str(directory)!r}, which is not a "
            "directory; fix the path or mount the data volume there"
        )
    return Settings(
        database_url=url,
        app_env=env,
        secret_key=secret_key(environ, env),
        log_level=log_level(environ),
        **build_info(environ),
    )


def load_for_cli(environ: Mapping[str, str] | None = None) -> Settings:
    """Read only what the database commands need: the sqlite service has no secret."""
    environ = os.environ if environ is None else environ
    return Settings(database_url=database_url(environ), log_level=log_level(environ))


def build_info(environ: Mapping[str, str]) -> dict[str, str]:
    """Values baked into the image at build time; absent outside an image."""
    return {
        "version": environ.get("APP_VERSION", "").strip() or "unknown",
        "revision": environ.get("APP_REVISION", "").strip() or "unknown",
        "built_at": environ.get("APP_BUILT_AT", "").strip() or "unknown",
    }
