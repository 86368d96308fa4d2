# Print what a host has installed and runs, for the deploy to compare with the plan.
# Run by the deploy in its first SSH round trip, after files/lock_and_probe.sh
# (tasks/lock.yml); reads WEBAPP_APP_DIR, WEBAPP_PATHS (paths relative to it or absolute,
# space-separated), WEBAPP_PROJECT, WEBAPP_ENV_FILE and WEBAPP_SALT from the environment.
#
#   systemd <the cap unit: enabled, disabled or absent>           where systemd runs
#   client-cap <digest or none>   the connection cap in force (files/client_cap.sh)
#   file <path> <sha256 or - for a directory> <uid> <gid> <mode>   per path that exists
#   container <service> <image id> <state> <health or none> <current or stale>
#                                                                 per project container
#
# A container is current when the host's Compose says it was created from the installed
# files as they are now (its config-hash label equals `config --hash`); one started by
# hand with other values is stale, and the deploy brings it back in line.
#
# The secret key's and the replica key's hashes are salted (WEBAPP_SALT is new each run), so what a verbose play
# prints cannot be matched against anything outside that run.
set -eu

if [ -d /run/systemd/system ]; then
    unit=$(systemctl is-enabled webapp-client-cap.service 2>/dev/null || true)
    echo "systemd ${unit:-absent}"
fi
if [ -f "$WEBAPP_APP_DIR/client-cap.sh" ]; then
    sh "$WEBAPP_APP_DIR/client-cap.sh" state
else
    echo "client-cap none"
fi
cd "$WEBAPP_APP_DIR" 2>/dev/null || exit 0
for path in $WEBAPP_PATHS; do
    if [ -d "$path" ]; then
        digest=-
    elif [ ! -f "$path" ]; then
        continue
    elif [ "$path" = secrets/secret_key ] || [ "$path" = secrets/replica_key ]; then
        digest=$({ printf '%s' "$WEBAPP_SALT"; cat "$path"; } | sha256sum | cut -d ' ' -f 1)
    else
        digest=$(sha256sum <"$path" | cut -d ' ' -f 1)
    fi
    echo "file $path $digest $(stat -c '%u %g %a' "$path")"
done
hashes=$(docker compose --env-file "$WEBAPP_ENV_FILE" config --hash '*' 2>/dev/null || true)
docker ps --all --quiet --filter "label=com.docker.compose.project=$WEBAPP_PROJECT" |
    xargs -r docker inspect --format \
        '{{index .Config.Labels "com.docker.compose.service"}} {{.Image}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{index .Config.Labels "com.docker.compose.config-hash"}}' |
    while read -r service image state health hash; do
        follows=stale
        printf '%s\n' "$hashes" | grep -qx "$service $hash" && follows=current
        echo "container $service $image $state $health $follows"
    done
