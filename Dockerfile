# The notes service image. Built by `nox -s build` (which also prepares the base image and
# the wheelhouse), or by `docker compose ... up --build`.
#
# Layer order is the point of this file: the base, then the dependencies (change only with
# the lock), then the code, then the build values (change every commit). A code change
# rebuilds only the last few small layers, and a build with nothing changed rebuilds none.
# The classic builder is assumed (no BuildKit on our machines): no RUN --mount, no --secret.

# python:3.12-slim where a registry is reachable; `nox -s build` passes the local
# Debian base (localhost/webapp-base:trixie) where it is not. Both are Debian 13.
ARG BASE_IMAGE=python:3.12-slim

# --- deps: the virtualenv, from the hash-checked wheelhouse only --------------------------
FROM ${BASE_IMAGE} AS deps

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY requirements/app.txt /tmp/requirements.txt
COPY wheelhouse/ /wheelhouse/

# With wheels present nothing touches the network (the air-gapped path). With an empty
# wheelhouse (a fresh clone) we try PyPI, still hash-checked, and if that fails we say in
# one line how to fill the wheelhouse. pip itself is removed afterwards: the app never
# installs anything at run time, and it is ~10 MB. Bytecode is compiled once here because
# a read-only root filesystem means Python could never cache it at run time.
RUN set -eu; \
    python3 -m venv /opt/venv; \
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then \
        /opt/venv/bin/pip install --quiet --no-index --find-links /wheelhouse \
            --require-hashes --only-binary=:all: --no-compile -r /tmp/requirements.txt; \
    else \
        echo "wheelhouse/ is empty: downloading the locked wheels from PyPI" >&2; \
        /opt/venv/bin/pip install --quiet --retries 1 --timeout 20 --require-hashes \
            --only-binary=:all: --no-compile -r /tmp/requirements.txt 2>/tmp/pip.log \
        || { echo "error: wheelhouse/ is empty and PyPI is unreachable from this build" \
                  "($(tail -n 1 /tmp/pip.log)); run \`nox -s build\` first to fill it" >&2; \
             exit 1; }; \
    fi; \
    /opt/venv/bin/python -m pip uninstall --quiet --yes pip; \
    find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +; \
    /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib >/dev/null

# --- runtime ------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

# SQLite at or above the floor in webapp/sqlite_floor.py, on either base: Debian forky's
# libsqlite3-0 and sqlite3 CLI, pinned in requirements/sqlite.lock and checked here against
# SHA256SUMS. Python's sqlite3 module links the shared library, so it follows. Offline on
# the local base, which already has the CLI's dependencies; the slim image may lack
# libreadline, which apt then brings from the archive it already names.
COPY debs/ /tmp/debs/
WORKDIR /tmp/debs
# hadolint ignore=DL3008
RUN set -eu; \
    if [ ! -f SHA256SUMS ]; then \
        echo "error: debs/ holds no SQLite packages; run \`nox -s build\` first to fill it" >&2; \
        exit 1; \
    fi; \
    sha256sum --check --strict --quiet SHA256SUMS; \
    if ! dpkg -i ./*.deb >/tmp/dpkg.log 2>&1; then \
        apt-get update -q && apt-get install -y -q -f --no-install-recommends \
        && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi; \
    rm -rf /tmp/debs /tmp/dpkg.log
WORKDIR /

# A fixed UID/GID so that volumes and host-side secret files can be owned ahead of time.
# /data, /backups and /run/webapp (the app's socket for the proxy) exist in the image,
# owned by that user, so that a fresh named volume mounted there is created writable for it.
RUN groupadd --system --gid 10001 webapp \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin webapp \
    && mkdir -p /app /data /backups /run/webapp \
    && chown webapp:webapp /data /backups /run/webapp

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=deps /opt/venv /opt/venv

WORKDIR /app
COPY gunicorn.conf.py /app/gunicorn.conf.py
COPY webapp/ /app/webapp/
# Fails the build in one line when the SQLite library or CLI is below the floor.
RUN python -m compileall -q /app/webapp >/dev/null && python -m webapp.sqlite_floor

USER 10001:10001
# 8000: Gunicorn (the stack keeps it inside); 80 and 443: the proxy service.
EXPOSE 8000 80 443

# Readiness, not liveness: healthy means the db is reachable and at head. urllib because
# the image carries no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]

CMD ["gunicorn", "--config", "/app/gunicorn.conf.py", "webapp.wsgi:application"]

# Build values last: they change with every commit and must not invalidate anything above.
ARG APP_VERSION=unknown
ARG APP_REVISION=unknown
ARG APP_BUILT_AT=unknown
ENV APP_VERSION=${APP_VERSION} \
    APP_REVISION=${APP_REVISION} \
    APP_BUILT_AT=${APP_BUILT_AT}
LABEL org.opencontainers.image.title="webapp" \
      org.opencontainers.image.description="Notes service (Pyramid, SQLite, Gunicorn)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${APP_VERSION}" \
      org.opencontainers.image.revision="${APP_REVISION}" \
      org.opencontainers.image.created="${APP_BUILT_AT}"
