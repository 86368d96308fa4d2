#!/bin/sh
# Cap the connections one client address may hold open to the proxy's published ports.
#
#   client-cap.sh apply CONF     make the host's firewall follow CONF
#   client-cap.sh state          print "client-cap <digest>", the digest of the CONF in
#                                force, or "client-cap none"
#
# CONF holds CONNS_PER_CLIENT (0: no cap) and PORTS (space-separated). The deploy writes
# it, and on a systemd host the webapp-client-cap unit applies it again whenever Docker
# starts, since a reboot empties the firewall.
#
# Docker sends a published port's traffic through the DOCKER-USER chain after it has
# rewritten the destination to the container, so the rules match the port the client
# dialled (--ctorigdstport), and a connection over the cap is reset at its first packet:
# Caddy never sees it. Each rule carries CONF's digest, which is how `state` tells the cap
# in force from an older one.
set -eu

chain=WEBAPP-CLIENT-CAP
usage="usage: client-cap.sh apply CONF | client-cap.sh state"

in_force() {
    iptables -w -C DOCKER-USER -j "$chain" 2>/dev/null || return 0
    iptables -w -S "$chain" 2>/dev/null |
        sed -n 's/.*"webapp-client-cap \([0-9a-f]*\)".*/\1/p' | sort -u
}

case ${1:-} in
state)
    found=$(in_force)
    echo "client-cap ${found:-none}"
    ;;
apply)
    conf=${2:?$usage}
    CONNS_PER_CLIENT=0
    PORTS=
    # shellcheck disable=SC1090
    . "$conf"
    digest=$(sha256sum <"$conf" | cut -c 1-16)
    for number in "$CONNS_PER_CLIENT" ${PORTS:-none}; do
        case $number in
        '' | *[!0-9]*)
            echo "error: $conf must set CONNS_PER_CLIENT to a number and PORTS to port" \
                "numbers; it says CONNS_PER_CLIENT=$CONNS_PER_CLIENT PORTS=$PORTS" >&2
            exit 1
            ;;
        esac
    done
    if ! command -v iptables >/dev/null; then
        echo "error: iptables is not installed on this host; install Debian's iptables" \
            "package (Docker's engine needs it too), or set webapp_conns_per_client: 0" >&2
        exit 1
    fi
    if [ "$CONNS_PER_CLIENT" -eq 0 ]; then
        while iptables -w -D DOCKER-USER -j "$chain" 2>/dev/null; do :; done
        iptables -w -F "$chain" 2>/dev/null || true
        iptables -w -X "$chain" 2>/dev/null || true
        exit 0
    fi
    # The engine creates DOCKER-USER when it starts; creating it first does no harm.
    iptables -w -N DOCKER-USER 2>/dev/null || true
    # Declaring the chain to iptables-restore --noflush replaces its rules in one step.
    {
        echo '*filter'
        echo ":$chain - [0:0]"
        for port in $PORTS; do
            echo "-A $chain -p tcp -m conntrack --ctstate NEW --ctorigdstport $port" \
                "-m connlimit --connlimit-above $CONNS_PER_CLIENT --connlimit-mask 32" \
                "-m comment --comment \"webapp-client-cap $digest\"" \
                "-j REJECT --reject-with tcp-reset"
        done
        echo 'COMMIT'
    } | iptables-restore -w --noflush || {
        echo "error: the host's firewall refused the per-client connection cap (its kernel" \
            "may lack the connlimit match); set webapp_conns_per_client: 0 to deploy" \
            "without it" >&2
        exit 1
    }
    iptables -w -C DOCKER-USER -j "$chain" 2>/dev/null || iptables -w -I DOCKER-USER -j "$chain"
    ;;
*)
    echo "$usage" >&2
    exit 2
    ;;
esac
