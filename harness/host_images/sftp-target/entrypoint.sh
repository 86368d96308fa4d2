#!/bin/sh
# PID 1: a host key of its own (ed25519 only) on first start, then sshd in the foreground.
set -eu
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
exec /usr/sbin/sshd -D -e
