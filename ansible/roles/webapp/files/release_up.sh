# Bring the stack to the release its env file names, health first, with no request lost.
# The one way the deploy, its rescue and rollback.yml bring a stack up: run as one detached
# job (the whole sequence finishes even if the SSH connection drops); reads
# WEBAPP_ENV_FILE, WEBAPP_PROJECT, WEBAPP_WAIT_TIMEOUT and WEBAPP_CRASH_RESTARTS from the
# environment, in the app directory.
#
# 1. `sqlite` first: the new image migrates the schema and reports healthy while the
#    old `app` keeps serving from the same volume (so the old release must work on the
#    new schema: expand, then contract; README "Zero-downtime releases").
# 2. When a running `app` is to be replaced, the switch (webapp/ops/slots.py): the new
#    release starts as `app_next`, the proxy takes it into rotation once its own health
#    checks pass, `app` drains (no new requests, the last in-flight one finishes) and is
#    recreated on the new release, then `app_next` drains and goes. Otherwise `app` comes
#    up on its own: the proxy waits for a healthy app, so a combined `up` would fail with
#    compose's "dependency failed to start" before a crash loop is named.
# 3. Then the rest (`proxy`). The proxy's image is the `webapp:proxy` tag, moved only when
#    the release's proxy differs from the running one (the label kit/image.py sets), so a
#    release that leaves the proxy as it was never restarts it or drops a connection.
# Each step waits for health and fails at once, with the reason in one line on stderr,
# when a container crash-loops, exits or turns unhealthy; WEBAPP_WAIT_TIMEOUT bounds a
# release that never gets there. A failed switch puts `app` back in rotation and removes
# `app_next`. The last line says whether any container changed.
set -eu

# The app_socket volume's mount point in both slots; WEBAPP_SOCKET_DIR keeps its default.
SOCKET_DIR=/run/webapp
PROXY_LABEL=webapp.proxy-fingerprint
# The proxy asks each slot's /readyz every 0.5 s (webapp/ops/proxy_config.py): after this
# long, a drained slot gets no new request and a ready one is in rotation.
HEALTH_SETTLE_S=1.2

compose() {
    docker compose --env-file "$WEBAPP_ENV_FILE" "$@"
}

# A variable as compose reads it: from the shell if set there, else from the env file.
env_value() {
    printenv "$1" || sed -n "s/^$1=//p" "$WEBAPP_ENV_FILE" | tail -n 1
}

# Container ID and state per container of the project: a recreated or (re)started
# container changes this, a no-change `up` does not.
containers() {
    docker ps --all --filter "label=com.docker.compose.project=$WEBAPP_PROJECT" \
        --format '{{.ID}} {{.State}}' | sort
}

wait_healthy() {
    deadline=$(($(date +%s) + WAIT_TIMEOUT))
    while :; do
        ids=$(compose ps --all --quiet "$@")
        if [ -z "$ids" ]; then
            echo "no container of service(s) $* exists after compose up" >&2
            return 1
        fi
        pending=""
        # shellcheck disable=SC2086 # one argument per container ID
        states=$(docker inspect --format \
            '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{.RestartCount}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' \
            $ids)
        while read -r service status restarts code health; do
            # Restarting means it exited and the engine is starting it again: a crash,
            # whatever a health status left from before says.
            if [ "$restarts" -ge "$CRASH_RESTARTS" ] || [ "$status" = exited ] || [ "$status" = dead ] ||
                [ "$status" = restarting ]; then
                echo "service $service crash-loops: restarted $restarts times (now $status, exit code $code); see \`docker compose logs $service\` on the host" >&2
                return 1
            fi
            if [ "$health" = unhealthy ]; then
                # The last check's own words: the healthchecks print the reason last.
                reason=$(docker inspect --format '{{with .State.Health}}{{range .Log}}{{.Output}}{{end}}{{end}}' \
                    "$(compose ps --quiet "$service")" | grep -v '^$' | tail -n 1 | cut -c 1-300)
                echo "service $service is unhealthy: ${reason:-no healthcheck output}" >&2
                return 1
            fi
            if [ "$health" != healthy ] && { [ "$health" != none ] || [ "$status" != running ]; }; then
                pending="$pending $service"
            fi
        done <<EOF
$states
EOF
        [ -z "$pending" ] && return 0
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "service(s)$pending not healthy within $WAIT_TIMEOUT s (webapp_wait_timeout)" >&2
            return 1
        fi
        sleep 0.2
    done
}

# Requests the proxy has in flight to a slot, from Caddy's admin API (inside its container).
in_flight() {
    count=$(compose exec -T proxy bash -c '
        exec 3<>/dev/tcp/127.0.0.1/2019
        printf "GET /reverse_proxy/upstreams HTTP/1.0\r\nHost: localhost:2019\r\n\r\n" >&3
        cat <&3' | tr '{' '\n' | sed -n "s|.*\"unix/$SOCKET_DIR/$1.sock\".*\"num_requests\":\([0-9]*\).*|\1|p")
    # Caddy lists an upstream once it has been used: an unlisted slot has none in flight.
    echo "${count:-0}"
}

# Take a slot out of rotation, and wait until its last request has been answered.
drain() {
    compose exec -T "$1" touch "$SOCKET_DIR/$1.draining"
    sleep "$HEALTH_SETTLE_S"
    deadline=$(($(date +%s) + WAIT_TIMEOUT))
    while [ "$(in_flight "$1")" != 0 ]; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "slot $1 still has requests in flight after $WAIT_TIMEOUT s; stopping it anyway" >&2
            return 0
        fi
        sleep 0.1
    done
}

# A switch that fails part-way leaves `app` serving as before.
abandon_switch() {
    compose exec -T app rm -f "$SOCKET_DIR/app.draining" 2>/dev/null || true
    compose rm --stop --force app_next >/dev/null 2>&1 || true
}

switch_slots() {
    trap abandon_switch EXIT
    compose up --detach --no-build --pull never app_next
    wait_healthy app_next
    sleep "$HEALTH_SETTLE_S"
    drain app
    compose up --detach --no-build --pull never app
    wait_healthy app
    sleep "$HEALTH_SETTLE_S"
    drain app_next
    compose rm --stop --force app_next
    trap - EXIT
}

# The proxy's tag follows the release only when the release's proxy differs.
pin_proxy() {
    tag=$(env_value WEBAPP_PROXY_IMAGE)
    [ -n "$tag" ] || return 0
    release=$(env_value WEBAPP_IMAGE)
    wanted=$(docker image inspect --format "{{index .Config.Labels \"$PROXY_LABEL\"}}" "$release")
    running=$(docker image inspect --format "{{index .Config.Labels \"$PROXY_LABEL\"}}" "$tag" 2>/dev/null || echo none)
    if [ -z "$wanted" ] || [ "$wanted" = "<no value>" ] || [ "$wanted" != "$running" ]; then
        docker tag "$release" "$tag"
    fi
}

WAIT_TIMEOUT=${WEBAPP_WAIT_TIMEOUT:-180}
CRASH_RESTARTS=${WEBAPP_CRASH_RESTARTS:-2}
before=$(containers)
# A switch cut off part-way (the host rebooted) may have left the stand-in behind.
if [ -n "$(compose ps --all --quiet app_next)" ]; then
    compose rm --stop --force app_next
fi
compose up --detach --no-build --pull never sqlite
wait_healthy sqlite
pin_proxy
# Would `up` recreate the running app: another config, or another image under its tag?
replaced() {
    live=$(compose ps --status running --quiet app)
    [ -n "$live" ] && [ -n "$(compose ps --status running --quiet proxy)" ] || return 1
    [ "$(docker inspect --format '{{index .Config.Labels "com.docker.compose.config-hash"}} {{.Image}}' "$live")" != \
        "$(compose config --hash app | cut -d ' ' -f 2) $(docker image inspect --format '{{.Id}}' "$(env_value WEBAPP_IMAGE)")" ]
}

if replaced; then
    switch_slots
else
    compose up --detach --no-build --pull never app
    wait_healthy app
fi
compose up --detach --no-build --pull never --remove-orphans
wait_healthy
if [ "$before" = "$(containers)" ]; then
    echo "stack unchanged"
else
    echo "stack changed"
fi
