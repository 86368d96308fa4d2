"""How Gunicorn serves webapp.wsgi:application. Every knob comes from an environment
variable whose default and rule are in webapp/settings.py; a bad value stops the master
with one line before any worker starts, and so does a bad app configuration (checked
here, not in each worker, where Gunicorn would print a traceback and keep respawning).
"""

import contextlib
import logging
import os
import sys
from typing import NoReturn

# Nothing imported here may import prometheus_client (webapp.db does): see prepare().
from webapp import settings
from webapp.ops import gunicorn_errors, jsonlog, metrics_server, slots


def _fail(message: str) -> NoReturn:
    print(f"webapp: configuration error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _env(name: str) -> str:
    """The variable's value, or its default; webapp/settings.py holds both, and the rule."""
    try:
        value = settings.read(name)
    except settings.ConfigError as exc:
        _fail(str(exc))
    assert value is not None  # every Gunicorn variable has a default
    return value


def _int_env(name: str) -> int:
    return int(_env(name))


try:
    _app_settings = settings.load()
except settings.ConfigError as exc:
    _fail(str(exc))

bind = [_env("GUNICORN_BIND")]
# The edge proxy forwards over this slot's unix socket on a volume the containers share;
# where that volume is not mounted (Gunicorn run on a host, or the image run alone on its
# read-only root), there is no proxy to serve.
_socket_dir = _env("WEBAPP_SOCKET_DIR")
if os.path.isdir(_socket_dir) and os.access(_socket_dir, os.W_OK):
    _slot = _env("WEBAPP_SLOT")
    bind.append(f"unix:{slots.socket_path(_socket_dir, _slot)}")
    # A slot drained by an earlier release (or left so by a crash) serves again once
    # restarted: the proxy's health checks bring it back into rotation.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(slots.drain_marker(_socket_dir, _slot))
metrics_port = _int_env("WEBAPP_METRICS_PORT")
_bind_host, _, _bind_port = bind[0].rpartition(":")
if bind[0].startswith("unix:"):
    _bind_host, _bind_port = "127.0.0.1", ""
if _bind_port == str(metrics_port):
    # The app's port may be published to the world; the metrics must never be on it.
    _fail(
        f"WEBAPP_METRICS_PORT={metrics_port} is GUNICORN_BIND's port too; "
        "give the metrics a port of their own"
    )
# Before a preloaded app or any worker imports prometheus_client.
metrics_server.prepare(metrics_port)
workers = _int_env("GUNICORN_WORKERS")
threads = _int_env("GUNICORN_THREADS")
worker_class = "gthread"
timeout = _int_env("GUNICORN_TIMEOUT")
graceful_timeout = _int_env("GUNICORN_GRACEFUL_TIMEOUT")
keepalive = 5
# Recycle workers now and then so a slow leak never becomes an outage; the jitter keeps
# them from all restarting at the same moment.
max_requests = _int_env("GUNICORN_MAX_REQUESTS")
max_requests_jitter = max(max_requests // 10, 1) if max_requests else 0

_reload = _env("GUNICORN_RELOAD")
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
# Honour X-Forwarded-* only from a proxy on the same host; Gunicorn also trusts every
# peer of a unix socket, which only the edge proxy can reach.
forwarded_allow_ips = "127.0.0.1"
# Bound request lines and headers so slow or hostile clients cannot grow them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Requests refused by those limits (or malformed) get problem+json like the app's errors.
gunicorn_errors.install()


def when_ready(server):
    # The metrics listen where the app does (all interfaces inside a container, for
    # compose to publish on 127.0.0.1 and for the compose network), on their own port.
    metrics_server.start(
        host=_bind_host.strip("[]") or "0.0.0.0",  # noqa: S104 - as GUNICORN_BIND says
        port=metrics_port,
        database=_app_settings.database_path,
        build={"version": _app_settings.version, "revision": _app_settings.revision},
        workers=lambda: len(server.WORKERS),
    )


def post_fork(_server, _worker):
    metrics_server.close_in_worker()
    from webapp.db import engine  # here, not above: it imports prometheus_client

    # The stack does not preload: each worker imports the app, and makes its engine,
    # after the fork, so there is nothing to drop. This guards `gunicorn --preload`,
    # where the master builds the engine and SQLite handles must not cross a fork.
    engine.dispose_after_fork()


def child_exit(_server, worker):
    metrics_server.worker_exited(worker.pid)


def on_exit(_server):
    metrics_server.stop()


# Last, once every check above passed; from the master only: the workers load the same
# settings and stay quiet about it.
if _app_settings.sqlite_warning is not None:
    _record = logging.LogRecord(
        "webapp", logging.WARNING, __file__, 0, _app_settings.sqlite_warning, None, None
    )
    print(jsonlog.JsonFormatter().format(_record), file=sys.stderr, flush=True)
