"""Every environment variable of the service, its stack and its deploy, in one table.

`VARIABLES` declares each one once: its default, the rule a value must follow, whether it
is secret, and which programs read it:

- ``app``: this module, when the web app or `python -m webapp db` starts;
- ``gunicorn``: gunicorn.conf.py, before any worker starts;
- ``proxy``: webapp/ops/proxy_config.py, when the proxy service builds Caddy's config;
- ``compose``: the compose files, from the env file (`.env.dev`, `.env.prod`) or the shell.
  These are the only names an env file may hold. One that the app or Gunicorn reads too
  is forwarded to the app container, one the proxy reads to the proxy container
  (tests/unit/test_settings_table.py holds compose/ to exactly that);
- ``deploy``: kit/deploy_plan.py and the playbook's preflight, on the controller, before
  any host is contacted: every value of the env file, and the prod key.

A bad value raises ConfigError with one line that names the variable, shows the value
(never for secrets) and says what is expected. Entry points turn that into a one-line
message on stderr and a non-zero exit, never a traceback.

Only the standard library is imported at module level: the deploy plan imports this
module on the controller, and the image has no YAML parser, so the table is Python data.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from webapp import sqlite_floor

READERS = ("app", "gunicorn", "proxy", "compose", "deploy")


class ConfigError(Exception):
    """A configuration value is missing or malformed; str() is the one-line message."""


class Rule:
    """What a value must look like. `expected` completes "set it to ..."."""

    expected: str

    def problem(self, value: str) -> str | None:
        """Why `value` breaks the rule ("is not valid", ...), or None when it is good."""
        return None if self.accepts(value) else "is not valid"

    def accepts(self, value: str) -> bool:
        raise NotImplementedError

    def normal(self, value: str) -> str:
        """The value as its readers use it."""
        return value


@dataclass(frozen=True)
class Text(Rule):
    """Any value: its reader (Compose, Docker, the file system) is the judge."""

    expected: str

    def accepts(self, value: str) -> bool:
        return True


@dataclass(frozen=True)
class WholeNumber(Rule):
    low: int
    high: int
    expected: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expected", f"a whole number from {self.low} to {self.high}")

    def accepts(self, value: str) -> bool:
        return value.isascii() and value.isdigit() and self.low <= int(value) <= self.high


@dataclass(frozen=True)
class OneOf(Rule):
    words: tuple[str, ...]
    upper: bool = False  # any case is accepted, and read in upper case
    expected: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expected", f"one of: {', '.join(self.words)}")

    def accepts(self, value: str) -> bool:
        return self.normal(value) in self.words

    def normal(self, value: str) -> str:
        return value.upper() if self.upper else value


@dataclass(frozen=True)
class Pattern(Rule):
    """A form Compose or the engine accepts: a size, a duration, a number of CPUs, a name."""

    expected: str
    regex: str

    def accepts(self, value: str) -> bool:
        return re.fullmatch(self.regex, value) is not None


@dataclass(frozen=True)
class IPAddress(Rule):
    expected: str

    def accepts(self, value: str) -> bool:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True


@dataclass(frozen=True)
class Bind(Rule):
    """Gunicorn's HOST:PORT or unix:PATH."""

    expected: str

    def accepts(self, value: str) -> bool:
        if value.startswith("unix:"):
            return True
        _host, sep, port = value.rpartition(":")
        return bool(sep) and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535


@dataclass(frozen=True)
class SqliteFileURL(Rule):
    """A URL SQLAlchemy opens as one SQLite file that several processes can share."""

    expected: str

    def problem(self, value: str) -> str | None:
        # SQLAlchemy only here: the deploy plan imports this module where it may be missing.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            return "is not a URL"
        if url.drivername not in ("sqlite", "sqlite+pysqlite"):
            return "is not a sqlite URL"
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            # Several workers must share one file; an in-memory database would give each its own.
            return "names no database file"
        if url.query:
            return "has query options, which this service sets itself (remove all after '?')"
        return None


@dataclass(frozen=True)
class ReplicaURL(Rule):
    """Where the replicator ships the database: empty (off), sftp:// or file://."""

    expected: str

    def problem(self, value: str) -> str | None:
        if value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme == "file":
            if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
                return "is not a file:/// URL of an absolute directory"
            return None
        if parts.scheme == "sftp":
            if not parts.username or not parts.hostname:
                return "names no user and host (sftp://USER@HOST[:PORT]/PATH)"
            if parts.password is not None:
                return "holds a password; give the key in REPLICA_KEY_FILE instead"
            try:
                parts.port  # noqa: B018 - raises on a port outside 1-65535
            except ValueError:
                return "has a port outside 1-65535"
            if parts.path in ("", "/"):
                return "names no directory on the server"
            return None
        return "is neither sftp:// nor file://"


@dataclass(frozen=True)
class SecretKey(Rule):
    """The key that signs sessions. Its rule applies with APP_ENV=prod, in the app and in
    the deploy's preflight alike: long enough, and not a value left as a placeholder.
    """

    expected: str
    min_length: int
    # Whole values the dev override, the docs and the vault example use.
    placeholders: frozenset[str]
    # Substrings that mark a value as a placeholder whatever surrounds them.
    markers: tuple[str, ...]

    def problem(self, value: str) -> str | None:
        # Never echo the value: these messages end up in logs.
        lowered = value.lower()
        if lowered in self.placeholders or any(marker in lowered for marker in self.markers):
            return "holds a placeholder value"
        if len(value) < self.min_length:
            return f"is {len(value)} characters, too short (at least {self.min_length})"
        return None


APP_ENVS = ("dev", "prod")
TLS_MODES = ("acme", "internal", "off")
# The compose services that run Gunicorn: webapp/ops/slots.py says how a release uses them.
SLOTS = ("app", "app_next")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEV_SECRET = "dev-only-insecure-secret-key-not-for-production-use"  # noqa: S105 - refused in prod
SECRET_KEY_RULE = SecretKey(
    expected="a random key of at least 32 characters, e.g. from "
    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`",
    min_length=32,
    placeholders=frozenset(
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
            DEV_SECRET,
        }
    ),
    markers=("changeme", "change-me", "change_me", "insecure", "placeholder", "example"),
)
# The forms Compose and the engine accept for sizes, durations and CPU counts.
SIZE = Pattern("a size such as 512M", r"\d+(\.\d+)? ?[kKmMgG]?[iI]?[bB]?")
DURATION = Pattern("a duration such as 5s or 1m30s", r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+")
CPUS = Pattern("a number of CPUs such as 1 or 0.5", r"\d*\.?\d+")


@dataclass(frozen=True)
class Variable:
    name: str
    rule: Rule
    readers: frozenset[str]
    meaning: str
    default: str | None = None  # what applies when it is unset; None: nothing does
    required: frozenset[str] = frozenset()  # the readers that refuse it unset
    secret: bool = False  # never shown, in a message or anywhere else

    def __post_init__(self) -> None:
        assert self.readers <= set(READERS) and self.required <= self.readers, self


def by(readers: str) -> frozenset[str]:
    """`by("app compose")`: a set of readers, short enough for the table below."""
    return frozenset(readers.split())


_STACK = by("compose deploy")  # set in the env files; compose reads them there
_GUNICORN = by("gunicorn compose deploy")  # set in the env files, forwarded to the app
_PROXY = by("proxy compose deploy")  # set in the env files, forwarded to the proxy

VARIABLES: dict[str, Variable] = {
    variable.name: variable
    for variable in (
        # The app.
        Variable(
            "APP_ENV",
            OneOf(APP_ENVS),
            by("app proxy compose deploy"),
            required=by("app compose deploy"),
            meaning="the environment; prod refuses dev keys and GUNICORN_RELOAD=1, and its "
            "proxy sends HSTS",
        ),
        Variable(
            "DATABASE_URL",
            SqliteFileURL("a SQLite file URL, e.g. sqlite:////data/app.db"),
            by("app"),
            required=by("app"),
            meaning="the SQLite file; compose gives both services sqlite:////data/app.db",
        ),
        Variable(
            "SECRET_KEY",
            SECRET_KEY_RULE,
            by("app"),
            secret=True,
            meaning="signs the page's session (CSRF); prod needs it or SECRET_KEY_FILE, and "
            "dev falls back to a fixed dev key",
        ),
        Variable(
            "SECRET_KEY_FILE",
            Text("a readable file that holds the key"),
            by("app"),
            meaning="the key's file instead; compose's prod override mounts one",
        ),
        Variable(
            "LOG_LEVEL",
            OneOf(LOG_LEVELS, upper=True),
            by("app compose deploy"),
            default="INFO",
            meaning="the least severe level logged, in any case",
        ),
        Variable(
            "APP_VERSION",
            Text("a version"),
            by("app"),
            default="unknown",
            meaning="the build's version, baked into the image",
        ),
        Variable(
            "APP_REVISION",
            Text("a git revision"),
            by("app"),
            default="unknown",
            meaning="the build's git revision, baked into the image",
        ),
        Variable(
            "APP_BUILT_AT",
            Text("a time"),
            by("app"),
            default="unknown",
            meaning="the build's commit time, baked into the image",
        ),
        # Gunicorn.
        Variable(
            "GUNICORN_BIND",
            Bind("HOST:PORT or unix:PATH, e.g. 0.0.0.0:8000"),
            by("gunicorn"),
            default="0.0.0.0:8000",  # all interfaces inside a container; compose publishes it
            meaning="where Gunicorn listens; the stack keeps the default",
        ),
        Variable(
            "GUNICORN_WORKERS",
            WholeNumber(1, 64),
            _GUNICORN,
            default="4",
            meaning="worker processes",
        ),
        Variable(
            "GUNICORN_THREADS",
            WholeNumber(1, 256),
            _GUNICORN,
            default="4",
            meaning="threads per worker",
        ),
        Variable(
            "GUNICORN_TIMEOUT",
            WholeNumber(1, 3600),
            _GUNICORN,
            default="30",
            meaning="seconds a request may take before its worker is restarted",
        ),
        Variable(
            "GUNICORN_GRACEFUL_TIMEOUT",
            WholeNumber(1, 3600),
            _GUNICORN,
            default="20",
            meaning="seconds workers get to finish their requests on shutdown",
        ),
        Variable(
            "GUNICORN_MAX_REQUESTS",
            WholeNumber(0, 10_000_000),
            _GUNICORN,
            default="1000",
            meaning="requests before a worker is recycled, with 10 % jitter; 0 never recycles",
        ),
        Variable(
            "ALLOW_OLD_SQLITE",
            OneOf(("0", "1")),
            by("app"),
            default="0",
            meaning="1 lets APP_ENV=prod start on an SQLite below the floor (one warning "
            "line instead of a refusal), for prod-mode tests on a machine whose SQLite "
            "cannot be upgraded; no env file may set it",
        ),
        Variable(
            "GUNICORN_RELOAD",
            OneOf(("0", "1")),
            by("gunicorn"),
            default="0",
            meaning="1 reloads on code changes, dev only; compose's dev override sets it",
        ),
        Variable(
            "WEBAPP_METRICS_PORT",
            WholeNumber(1, 65535),
            _GUNICORN,
            default="9180",
            meaning="the port of the Prometheus metrics (/metrics), in the container and "
            "on the host's 127.0.0.1; never the app's port",
        ),
        Variable(
            "WEBAPP_PROXY_METRICS_PORT",
            WholeNumber(1, 65535),
            _PROXY,
            default="9182",
            meaning="the port of the proxy's own Prometheus metrics (Caddy's /metrics), in "
            "its container and on the host's 127.0.0.1 (dev: 9183); never a public port",
        ),
        Variable(
            "WEBAPP_REPLICA_METRICS_PORT",
            WholeNumber(1, 65535),
            by("app compose deploy"),
            default="9184",
            meaning="the port of the replicator's own Prometheus metrics (Litestream's "
            "/metrics) when REPLICA_URL is set, in the sqlite container and on the host's "
            "127.0.0.1 (dev: 9185)",
        ),
        # Off-host replication (webapp/ops/replica.py): the sqlite service runs the
        # replicator, the app shows its lag.
        Variable(
            "REPLICA_URL",
            ReplicaURL("sftp://USER@HOST[:PORT]/PATH, file:///PATH, or empty for none"),
            by("app compose deploy"),
            default="",
            meaning="where the sqlite service replicates the database continuously; empty: "
            "no replica, the data lives on one disk",
        ),
        Variable(
            "WEBAPP_REPLICA_HOST_KEY",
            Pattern(
                "the SFTP server's `ssh-ed25519 AAAA...` public key line",
                r"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+=*( [^\n]*)?",
            ),
            by("app compose deploy"),
            default="",
            meaning="the pinned host key of an sftp:// REPLICA_URL; any other key is refused",
        ),
        Variable(
            "REPLICA_KEY_FILE",
            Text("a readable file that holds the SSH private key"),
            by("app"),
            meaning="the SSH private key for an sftp:// REPLICA_URL (mode 0600)",
        ),
        Variable(
            "WEBAPP_REPLICA_KEY_FILE",
            Text("the path of the SSH private key's file"),
            _STACK,
            default="/dev/null",
            meaning="prod: the sftp:// replica's private key file on the host, mounted into "
            "the sqlite service as REPLICA_KEY_FILE; /dev/null: no key",
        ),
        Variable(
            "REPLICA_MAX_LAG",
            WholeNumber(1, 86_400),
            by("app compose deploy"),
            default="30",
            meaning="seconds the replica may lag before the sqlite service turns unhealthy",
        ),
        Variable(
            "REPLICA_VERIFY_INTERVAL",
            WholeNumber(60, 10_000_000),
            by("app compose deploy"),
            default="3600",
            meaning="seconds between verified test restores of the replica",
        ),
        # The edge proxy (Caddy): what it listens on, its TLS, and where the app is.
        Variable(
            "WEBAPP_DOMAIN",
            Pattern(
                "a DNS name such as notes.example.com",
                r"(?i)(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            ),
            _PROXY,
            default="",
            meaning="the public host name; empty serves plain HTTP for any host name",
        ),
        Variable(
            "WEBAPP_TLS",
            OneOf(TLS_MODES),
            _PROXY,
            default="",
            meaning="acme (a certificate from an ACME CA), internal (a local CA, its root on "
            "the proxy_data volume) or off; empty means acme with a domain, off without",
        ),
        Variable(
            "WEBAPP_ACME_EMAIL",
            Pattern("an e-mail address such as ops@example.com", r"[^@\s]+@[^@\s]+"),
            _PROXY,
            default="",
            meaning="acme: the account's contact address; empty registers without one",
        ),
        Variable(
            "WEBAPP_ACME_CA",
            Pattern("an ACME directory URL such as https://acme.example/dir", r"https://\S+"),
            _PROXY,
            default="",
            meaning="acme: the CA's directory URL; empty uses Let's Encrypt, then ZeroSSL",
        ),
        Variable(
            "WEBAPP_ACME_CA_ROOT",
            Text("a PEM file inside the proxy container"),
            by("proxy"),
            default="",
            meaning="acme: a root certificate to trust for the CA's own HTTPS (a test CA); "
            "empty trusts the system roots",
        ),
        Variable(
            "WEBAPP_HTTP_PORT",
            WholeNumber(1, 65535),
            _PROXY,
            default="80",
            meaning="the proxy's HTTP port, in its container and on the host (dev: 8080)",
        ),
        Variable(
            "WEBAPP_HTTPS_PORT",
            WholeNumber(1, 65535),
            _PROXY,
            default="443",
            meaning="the proxy's HTTPS port, in its container and on the host (dev: 8443)",
        ),
        Variable(
            "WEBAPP_PUBLIC_ADDRESS",
            IPAddress("an IP address such as 0.0.0.0 (Compose publishes on addresses only)"),
            _STACK,
            default="0.0.0.0",  # noqa: S104 - the proxy is the stack's public door
            meaning="the host address the proxy's ports are published on (dev: 127.0.0.1)",
        ),
        Variable(
            "WEBAPP_SOCKET_DIR",
            Pattern("an absolute directory such as /run/webapp", r"/\S*[^/\s]"),
            by("app gunicorn proxy"),
            default="/run/webapp",
            meaning="where each app slot's Gunicorn listens on a unix socket (SLOT.sock) "
            "and the proxy forwards to, on the volume they share; the stack keeps the default",
        ),
        Variable(
            "WEBAPP_SLOT",
            OneOf(SLOTS),
            by("app gunicorn"),
            default="app",
            meaning="which of the two app services this Gunicorn is: `app` serves, "
            "`app_next` stands in while a release replaces it; the stack sets it",
        ),
        # The stack: what the env files give compose, checked by the deploy plan.
        Variable(
            "COMPOSE_FILE",
            Pattern("compose files joined by ':', e.g. compose/compose.yaml", r"[^:]+(:[^:]+)*"),
            _STACK,
            required=by("deploy"),
            meaning="the stack's compose files, the base first",
        ),
        Variable(
            "COMPOSE_PROJECT_NAME",
            Pattern(
                "lower-case letters, digits, '-' and '_', e.g. webapp-prod", r"[a-z0-9][a-z0-9_-]*"
            ),
            _STACK,
            required=by("deploy"),
            meaning="the stack's project name",
        ),
        Variable(
            "WEBAPP_IMAGE",
            Text("an image reference"),
            _STACK,
            default="webapp:latest",
            meaning="the image the services run; the deploy pins the built tag",
        ),
        Variable(
            "WEBAPP_PROXY_IMAGE",
            Text("an image reference"),
            _STACK,
            default="",
            meaning="the proxy's image when not WEBAPP_IMAGE; the deploy sets `webapp:proxy`, "
            "a tag each release moves only when it changes the proxy, so it is rarely restarted",
        ),
        Variable(
            "WEBAPP_NEXT_IMAGE",
            Text("an image reference"),
            by("compose"),
            default="",
            meaning="the new release's image for `app_next` while it replaces `app`; the "
            "release sets it in its shell (WEBAPP_IMAGE when empty)",
        ),
        Variable(
            "WEBAPP_BIND_ADDRESS",
            IPAddress("an IP address such as 127.0.0.1 (Compose publishes on addresses only)"),
            _STACK,
            default="127.0.0.1",
            meaning="the host address the app's port is published on",
        ),
        Variable(
            "WEBAPP_PORT",
            WholeNumber(1, 65535),
            _STACK,
            default="8000",
            required=by("deploy"),
            meaning="the host port the app is published on",
        ),
        Variable(
            "WEBAPP_SECRET_KEY_FILE",
            Text("the path of the prod key's file"),
            _STACK,
            required=by("compose"),
            meaning="the prod key's file on the host, mounted as SECRET_KEY_FILE; the deploy "
            "sets it",
        ),
        Variable(
            "BACKUP_INTERVAL",
            WholeNumber(1, 10_000_000),
            _STACK,
            default="3600",
            meaning="seconds between backups (`db serve --backup-interval`)",
        ),
        Variable(
            "BACKUP_KEEP",
            WholeNumber(1, 10_000),
            _STACK,
            default="24",
            meaning="backups kept (`db serve --keep`)",
        ),
        Variable(
            "SQLITE_HEALTHCHECK_INTERVAL",
            DURATION,
            _STACK,
            default="1s",
            meaning="how often the sqlite service is checked",
        ),
        Variable(
            "APP_HEALTHCHECK_INTERVAL",
            DURATION,
            _STACK,
            default="1s",
            meaning="how often the app and proxy services are checked",
        ),
        Variable(
            "APP_CPUS",
            CPUS,
            _STACK,
            default="2",
            meaning="prod: the app's CPU limit, at most the host's CPU count",
        ),
        Variable(
            "APP_MEMORY", SIZE, _STACK, default="512M", meaning="prod: the app's memory limit"
        ),
        Variable(
            "SQLITE_CPUS",
            CPUS,
            _STACK,
            default="1",
            meaning="prod: the sqlite service's CPU limit",
        ),
        Variable(
            "SQLITE_MEMORY",
            SIZE,
            _STACK,
            default="256M",
            meaning="prod: the sqlite service's memory limit",
        ),
        Variable("PROXY_CPUS", CPUS, _STACK, default="1", meaning="prod: the proxy's CPU limit"),
        Variable(
            "PROXY_MEMORY",
            SIZE,
            _STACK,
            default="256M",
            meaning="prod: the proxy's memory limit",
        ),
        Variable(
            "LOG_MAX_SIZE",
            SIZE,
            _STACK,
            default="10m",
            meaning="prod: a container log's size before it is rotated",
        ),
        Variable(
            "LOG_MAX_FILES",
            WholeNumber(1, 1000),
            _STACK,
            default="5",
            meaning="prod: rotated container log files kept",
        ),
        # The deploy.
        Variable(
            "WEBAPP_SECRET_KEY",
            SECRET_KEY_RULE,
            by("deploy"),
            secret=True,
            meaning="the prod key, in the controller's environment; else vault_webapp_secret_key",
        ),
    )
}


def _advice(variable: Variable) -> str:
    advice = f"set it to {variable.rule.expected}"
    if variable.default == "":
        advice += " (or leave it empty)"
    elif variable.default is not None:
        advice += f" (or unset it for {variable.default})"
    return advice


def read(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value as its readers use it, its default when unset, or ConfigError."""
    variable = VARIABLES[name]
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None:
        if variable.required & {"app", "gunicorn"}:
            raise ConfigError(f"{name} is not set; {_advice(variable)}")
        return variable.default
    value = raw.strip()
    if not value and variable.default == "":
        return ""  # where the default is empty, an empty value is that default
    if not value:
        raise ConfigError(f"{name} is set but empty; {_advice(variable)}")
    problem = variable.rule.problem(value)
    if problem is not None:
        shown = name if variable.secret else f"{name}={value!r}"
        raise ConfigError(f"{shown} {problem}; {_advice(variable)}")
    return variable.rule.normal(value)


@dataclass(frozen=True)
class Settings:
    database_url: str
    app_env: str = "dev"
    secret_key: str = DEV_SECRET
    log_level: str = "INFO"
    version: str = "unknown"
    revision: str = "unknown"
    built_at: str = "unknown"
    # Why the SQLite library is below the floor, when it is and that was allowed.
    sqlite_warning: str | None = None

    @property
    def database_path(self) -> Path:
        return database_path(self.database_url)


def database_path(url: str) -> Path:
    """The file path inside a sqlite URL that database_url() has accepted."""
    from sqlalchemy.engine import make_url

    return Path(make_url(url).database or "")


def _required(name: str, environ: Mapping[str, str]) -> str:
    value = read(name, environ)
    assert value is not None  # a required variable is never None
    return value


def database_url(environ: Mapping[str, str]) -> str:
    return _required("DATABASE_URL", environ)


def log_level(environ: Mapping[str, str]) -> str:
    return _required("LOG_LEVEL", environ)


def app_env(environ: Mapping[str, str]) -> str:
    return _required("APP_ENV", environ)


def secret_key(environ: Mapping[str, str], env: str) -> str:
    hint = f"set SECRET_KEY or SECRET_KEY_FILE to {SECRET_KEY_RULE.expected}"
    # Not read(): the key's rule applies only in prod, and then to the file's content too.
    key = environ.get("SECRET_KEY")
    if key is not None:
        key = key.strip()
        if not key:
            raise ConfigError(f"SECRET_KEY is set but empty; {hint}")
    path = read("SECRET_KEY_FILE", environ)
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
            raise ConfigError(f"SECRET_KEY_FILE={path!r} is empty; {hint}")
    if key is None:
        if env == "prod":
            raise ConfigError(f"SECRET_KEY is not set and APP_ENV=prod; {hint}")
        return DEV_SECRET
    if env == "prod":
        problem = SECRET_KEY_RULE.problem(key)
        if problem is not None:
            raise ConfigError(f"{source} {problem}, refused with APP_ENV=prod; {hint}")
    return key


def sqlite_library(environ: Mapping[str, str], env: str | None) -> str | None:
    """The warning to log about the SQLite library, or None when it is at or above the
    floor; with APP_ENV=prod an older one is refused unless ALLOW_OLD_SQLITE=1."""
    reason = sqlite_floor.problem(sqlite_floor.library_version())
    if reason is None:
        return None
    if env == "prod" and read("ALLOW_OLD_SQLITE", environ) != "1":
        raise ConfigError(reason)
    return reason


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
        sqlite_warning=sqlite_library(environ, env),
        **build_info(environ),
    )


def load_for_cli(environ: Mapping[str, str] | None = None) -> Settings:
    """Read only what the database commands need: the sqlite service has no secret. Its
    APP_ENV, where set, decides whether an old SQLite is refused."""
    environ = os.environ if environ is None else environ
    env = app_env(environ) if "APP_ENV" in environ else None
    return Settings(
        database_url=database_url(environ),
        log_level=log_level(environ),
        sqlite_warning=sqlite_library(environ, env),
    )


def build_info(environ: Mapping[str, str]) -> dict[str, str]:
    """Values baked into the image at build time; absent outside an image."""

    def baked(name: str) -> str:
        # An empty build argument becomes an empty variable: that means "not known", not
        # a configuration mistake worth stopping for.
        default = VARIABLES[name].default
        assert default is not None
        return environ.get(name, "").strip() or default

    return {
        "version": baked("APP_VERSION"),
        "revision": baked("APP_REVISION"),
        "built_at": baked("APP_BUILT_AT"),
    }
