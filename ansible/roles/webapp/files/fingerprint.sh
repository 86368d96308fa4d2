# Print what a host runs, in terms the controller can compute from the local build, one
# value per line (tasks/fingerprint.yml); run in the app directory. Reads WEBAPP_PROJECT,
# WEBAPP_ENV_FILE, WEBAPP_COMPOSE_FILES (space-separated) and WEBAPP_RELEASE_LOCK (1: the
# deploy's lock is released after the reading) from the environment.
#
#   <the running app's image ID, or "not running">
#   <sha256 of the compose files' sha256sum lines, byte for byte, or "missing">
#   <sha256 of the env file, or "missing">
#   current, or stale: <service> ...   whether each service runs a container created from
#                                      exactly the installed files
#
# The files are hashed as they are: a rendering by `docker compose config` would differ
# between Compose versions. A container follows the files when its config-hash label
# equals what the host's own Compose computes from them now.
set -u

docker inspect --format '{{.Image}}' "$WEBAPP_PROJECT-app-1" 2>/dev/null || echo 'not running'
# shellcheck disable=SC2086 # one argument per compose file
if sums=$(sha256sum $WEBAPP_COMPOSE_FILES 2>/dev/null); then
    printf '%s\n' "$sums" | sha256sum | cut -d ' ' -f 1
else
    echo missing
fi
if sum=$(sha256sum "$WEBAPP_ENV_FILE" 2>/dev/null); then
    echo "${sum%% *}"
else
    echo missing
fi
wanted=$(docker compose --env-file "$WEBAPP_ENV_FILE" config --hash '*' 2>/dev/null) || wanted='config unreadable'
running=$(docker ps --quiet --filter "label=com.docker.compose.project=$WEBAPP_PROJECT" |
    xargs -r docker inspect --format \
        '{{index .Config.Labels "com.docker.compose.service"}} {{index .Config.Labels "com.docker.compose.config-hash"}}')
stale=''
while read -r service hash; do
    printf '%s\n' "$running" | grep -qx "$service $hash" || stale="$stale $service"
done <<LIST
$wanted
LIST
echo "${stale:+stale:}${stale:-current}"

if [ "$WEBAPP_RELEASE_LOCK" = 1 ]; then
    rm -rf deploy.lock
fi
