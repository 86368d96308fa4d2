# Take the deploy lock, then print what a deploy or a rollback must know of the host, in
# one SSH round trip (tasks/lock.yml). Reads WEBAPP_APP_DIR from the environment and the
# owner record, one line of JSON, from stdin ("none" in a dry run, which takes no lock).
#
#   lock taken | lock not taken | lock held <the holder's owner.json> | lock failed <why>
#   docker <the engine's version, or "(not answering)">
#   compose <the Compose plugin's version, or "(missing)">
#   image <ID> <repository:tag>      per tag of each image (<none>:<none> when untagged)
#   release <the release record on one line, or null before the first deploy>
#
# A held or failed lock ends the output: nothing else is read for a deploy that stops.
set -u

lock="$WEBAPP_APP_DIR/deploy.lock"
IFS= read -r owner || true
if [ "$owner" = none ]; then
    echo "lock not taken"
elif ! made=$(mkdir -p "$WEBAPP_APP_DIR" 2>&1); then
    echo "lock failed $made"
    exit 0
# mkdir is atomic: of two deploys racing for the host exactly one creates the directory.
elif mkdir "$lock" 2>/dev/null; then
    printf '%s\n' "$owner" >"$lock/owner.json"
    echo "lock taken"
else
    echo "lock held $(tr -d '\n' <"$lock/owner.json" 2>/dev/null)"
    exit 0
fi

engine=$(docker version --format '{{.Server.Version}}' 2>/dev/null) || engine='(not answering)'
echo "docker $engine"
plugin=$(docker compose version --short 2>/dev/null) || plugin='(missing)'
echo "compose $plugin"
docker image ls --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}' 2>/dev/null |
    sed 's/^/image /'
# JSON keeps no raw newline inside a string: the record stays valid on one line.
record=$(tr -d '\n' <"$WEBAPP_APP_DIR/releases.json" 2>/dev/null) || record=null
echo "release ${record:-null}"
