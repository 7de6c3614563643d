#!/bin/sh
# The image's entrypoint: `registrator "$@"`, as an unprivileged user whenever the Docker
# socket's group allows it.
#
# Started as root (the default), it looks at the mounted socket: when its group may read and
# write it, registrator runs as uid 10001 with that group added, and with no capabilities.
# Otherwise (a socket only root may use) it stays root and says so. Started as another user
# (`--user 10001 --group-add <socket gid>`), it simply runs registrator.
# REGISTRATOR_RUN_AS_ROOT=1 keeps root.
set -eu

# gliderlabs/registrator's documented mount is -v /var/run/docker.sock:/tmp/docker.sock: honour it.
if [ -z "${DOCKER_HOST:-}" ] && [ ! -S /var/run/docker.sock ] && [ -S /tmp/docker.sock ]; then
    export DOCKER_HOST=unix:///tmp/docker.sock
fi
socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
socket=${socket#unix://}

if [ "$(id -u)" = 0 ] && [ -z "${REGISTRATOR_RUN_AS_ROOT:-}" ] && [ -S "$socket" ]; then
    gid=$(stat -c %g "$socket")
    mode=$(stat -c %a "$socket")
    if [ $(( (0$mode >> 3) & 6 )) = 6 ]; then
        exec setpriv --reuid=10001 --regid=10001 --groups="$gid" --inh-caps=-all \
            -- registrator "$@"
    fi
    echo "registrator-entrypoint: $socket is not group read-write (mode $mode): running as root" >&2
fi
exec registrator "$@"
