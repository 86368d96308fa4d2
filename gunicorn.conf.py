"""How Gunicorn serves webapp.wsgi:application. Every knob comes from an environment
variable with a default; a bad value stops the master with one line before any worker
starts, and so does a bad app configuration (checked here, not in each worker, where
Gunicorn would print a traceback and keep respawning).
"""

import os
import sys

from webapp import settings
from webapp.db import engine as db
from webapp.ops import gunicorn_errors


def _fail(message: str) -> None:
    print(f"webapp: configuration error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _env(name: str) -> str | None:
    raw = os.environ.get(name)
    if raw is not None and not raw.strip():
        _fail(f"{name} is set but empty; give it a value or unset it for the default")
    return None if raw is None else raw.strip()


def _int_env(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        _fail(f"{name}={raw!r} is not a whole number from {minimum} to {maximum}; fix or unset it")
    return int(raw)


def _bind_env() -> str:
    raw = _env("GUNICORN_BIND")
    if raw is None:
        return "0.0.0.0:8000"  # all interfaces inside a container; compose publishes it
    if raw.startswith("unix:"):
        return raw
    _host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        _fail(f"GUNICORN_BIND={raw!r} is not HOST:PORT or unix:PATH; e.g. 0.0.0.0:8000")
    return raw


try:
    _app_settings = settings.load()
except settings.ConfigError as exc:
    _fail(str(exc))

bind = _bind_env()
workers = _int_env("GUNICORN_WORKERS", 2, 1, 64)
threads = _int_env("GUNICORN_THREADS", 4, 1, 256)
worker_class = "gthread"
timeout = _int_env("GUNICORN_TIMEOUT", 30, 1, 3600)
graceful_timeout = _int_env("GUNICORN_GRACEFUL_TIMEOUT", 20, 1, 3600)
keepalive = 5
# Recycle workers now and then so a slow leak never becomes an outage; the jitter keeps
# them from all restarting at the same moment.
max_requests = _int_env("GUNICORN_MAX_REQUESTS", 1000, 0, 10_000_000)
max_requests_jitter = max(max_requests // 10, 1) if max_requests else 0

_reload = _env("GUNICORN_RELOAD") or "0"
if _reload not in ("0", "1"):
    _fail(f"GUNICORN_RELOAD={_reload!r} is not 0 or 1; set 1 to reload on code changes (dev)")
if _reload == "1" and _app_settings.app_env != "dev":
    # Reloading watches the code for changes: a dev convenience, never a prod setting.
    _fail("GUNICORN_RELOAD=1 is for APP_ENV=dev only; unset it or set it to 0")
reload = _reload == "1"

# Heartbeat files on tmpfs: the prod container's root filesystem is read-only.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn only writes its own mkstemp files there
if os.path.isdir(_SHM):
    worker_tmp_dir = _SHM

# Gunicorn's runtime control socket would be a file under $HOME (read-only in prod) and
# a management door nobody here uses.
control_socket_disable = True

# Access and error logs: JSON lines, access to stdout and errors to stderr.
accesslog = "-"
errorlog = "-"
loglevel = _app_settings.log_level.lower()
logger_class = "webapp.ops.gunicorn_logging.JsonLogger"
# Honour X-Forwarded-* only from a proxy on the same host.
forwarded_allow_ips = "127.0.0.1"
# Bound request lines and headers so slow or hostile clients cannot grow them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Requests refused by those limits (or malformed) get problem+json like the app's errors.
gunicorn_errors.install()


def post_fork(_server, _worker):
    # With preload_app the engine was made in the master; SQLite handles must not be
    # shared across processes, so each worker starts with an empty pool.
    db.dispose_after_fork()
