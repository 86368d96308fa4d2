#!/bin/sh
# PID 1 of a test host: the Docker engine in the background, sshd in the foreground.
# Restarting the container restarts both, like a server reboot (the engine then brings
# back the stack's containers by their restart policy).
set -eu
ssh-keygen -A >/dev/null
dockerd >/var/log/dockerd.log 2>&1 &
exec /usr/sbin/sshd -D -e
