# Print what a host has installed and runs, for the deploy to compare with the plan.
# Run by configure.yml in one SSH round trip; reads WEBAPP_APP_DIR, WEBAPP_PATHS (paths
# relative to it, space-separated), WEBAPP_PROJECT and WEBAPP_SALT from the environment.
#
#   <path> <sha256 or - for a directory> <uid> <gid> <mode>      per path that exists
#   container <service> <image id> <state> <health or none>       per project container
#
# The secret key's hash is salted (WEBAPP_SALT is new each run), so what a verbose play
# prints cannot be matched against anything outside that run.
set -eu

cd "$WEBAPP_APP_DIR" 2>/dev/null || exit 0
for path in $WEBAPP_PATHS; do
    if [ -d "$path" ]; then
        digest=-
    elif [ ! -f "$path" ]; then
        continue
    elif [ "$path" = secrets/secret_key ]; then
        digest=$({ printf '%s' "$WEBAPP_SALT"; cat "$path"; } | sha256sum | cut -d ' ' -f 1)
    else
        digest=$(sha256sum <"$path" | cut -d ' ' -f 1)
    fi
    echo "$path $digest $(stat -c '%u %g %a' "$path")"
done
docker ps --all --quiet --filter "label=com.docker.compose.project=$WEBAPP_PROJECT" |
    xargs -r docker inspect --format \
        'container {{index .Config.Labels "com.docker.compose.service"}} {{.Image}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}'
