# Bring the stack to the release its env file names, health first, on the host.
# Run by release.yml as one detached job (the whole sequence finishes even if the SSH
# connection drops); reads WEBAPP_ENV_FILE, WEBAPP_PROJECT, WEBAPP_WAIT_TIMEOUT and
# WEBAPP_CRASH_RESTARTS from the environment, in the app directory.
#
# 1. `sqlite` first: the new image migrates the schema and reports healthy while the
#    old `app` keeps serving from the same volume.
# 2. Then `app`, on its own: the proxy waits for a healthy app, so a combined `up` would
#    fail with compose's "dependency failed to start" before a crash loop is named.
# 3. Then the rest (`proxy`): users see one Gunicorn restart, not the whole stack's.
# Each step waits for health and fails at once, with the reason in one line on stderr,
# when a container crash-loops, exits or turns unhealthy; WEBAPP_WAIT_TIMEOUT bounds a
# release that never gets there. The last line says whether any container changed.
set -eu

compose() {
    docker compose --env-file "$WEBAPP_ENV_FILE" "$@"
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
            if [ "$restarts" -ge "$CRASH_RESTARTS" ] || [ "$status" = exited ] || [ "$status" = dead ]; then
                echo "service $service crash-loops: restarted $restarts times (now $status, exit code $code); see \`docker compose logs $service\` on the host" >&2
                return 1
            fi
            if [ "$health" = unhealthy ]; then
                reason=$(docker inspect --format '{{with .State.Health}}{{range .Log}}{{.Output}}{{end}}{{end}}' \
                    "$(compose ps --quiet "$service")" | tr -s '\n' ' ' | tail -c 200)
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
        sleep 1
    done
}

WAIT_TIMEOUT=${WEBAPP_WAIT_TIMEOUT:-180}
CRASH_RESTARTS=${WEBAPP_CRASH_RESTARTS:-2}
before=$(containers)
compose up --detach --no-build --pull never sqlite
wait_healthy sqlite
compose up --detach --no-build --pull never app
wait_healthy app
compose up --detach --no-build --pull never --remove-orphans
wait_healthy
if [ "$before" = "$(containers)" ]; then
    echo "stack unchanged"
else
    echo "stack changed"
fi
