#!/bin/sh
# PID 1 of a test host: the Docker engine in the background, sshd in the foreground.
# Restarting the container restarts both, like a server reboot (the engine then brings
# back the stack's containers by their restart policy).
set -eu
ssh-keygen -A >/dev/null
# Inside this container the engine cannot disable IPv6 on its bridge interfaces, and
# without this variable every nested container on a bridge network fails to start.
DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1 dockerd >/var/log/dockerd.log 2>&1 &
exec /usr/sbin/sshd -D -e
