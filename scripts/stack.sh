#!/usr/bin/env bash
# Brings up the real stack registrator works against, on a Debian 12 machine as root:
#   docker   Debian's docker.io, installed when dockerd is missing, started when the socket is silent
#   consul   Debian 11's consul 1.8.7, fetched with a private apt configuration into .cache/
#   prometheus  Debian 11's prometheus 2.24 (Debian 12's lacks Consul discovery) into .cache/
#   etcd     Debian 12's etcd-server (3.4), its own service never started: tests run their own
#   nginx    Debian's nginx-light, the fleet tests' load balancer (they run nginx processes of
#            their own; the package's service is not left running)
#   image    a busybox image for test and demo containers, built from busybox-static (no registry)
#   base     a python3 base image for registrator's Dockerfile, debootstrapped from Debian
#            (built once per machine, tagged registrator-test/python-base:bookworm)
#   wheels   wheels of registrator's dependencies in wheels/, for image builds without an index
#   compose  Debian's docker-compose, to validate compose/
#   haproxy  Debian's haproxy, the load balancer of the drain test (its own service is not left
#            running: the test starts its own process on loopback ports)
#   podman   Debian 12's podman (4.3.1) with runc, netavark and catatonit (the pod infra image);
#            no service is started: the tests run `podman system service` on a socket of their own
#   venv     .venv with the package and its dev tools
#   demo     what scripts/demo.sh uses: docker, consul, image, and .venv with the package and its
#            runtime dependencies only (a later `venv` or `all` adds the dev tools to that venv)
# Usage: scripts/stack.sh [docker|consul|prometheus|etcd|nginx|image|base|wheels|compose|haproxy|podman|venv|demo|all]...
#        (default: all)
# Everything it fetches lives under .cache/ (override with REGISTRATOR_CACHE); it is idempotent.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${REGISTRATOR_CACHE:-$ROOT/.cache}
TEST_IMAGE=${REGISTRATOR_TEST_IMAGE:-registrator-test/busybox:latest}
PYTHON_BASE=${REGISTRATOR_PYTHON_BASE:-registrator-test/python-base:bookworm}
mkdir -p "$CACHE"

log() { printf 'stack: %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
    # another apt (a second checkout's stack.sh, unattended upgrades) may hold the lock a while
    local wait=(-o DPkg::Lock::Timeout=300)
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}

docker_answers() { timeout 5 docker version >/dev/null 2>&1; }

ensure_docker() {
    if ! command -v dockerd >/dev/null 2>&1; then
        log "installing docker.io"
        apt_install docker.io iptables
    fi
    if ! command -v docker >/dev/null 2>&1; then
        apt_install docker-cli || apt_install docker.io
    fi
    if docker_answers; then return 0; fi
    # A daemon killed without cleanup leaves a pid file naming a dead process; dockerd refuses to
    # start over it, so drop it when nothing alive owns it.
    local pidfile=/var/run/docker.pid
    if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
        log "removing stale $pidfile"
        rm -f "$pidfile"
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        log "starting dockerd (log: $CACHE/dockerd.log)"
        nohup dockerd >>"$CACHE/dockerd.log" 2>&1 &
    fi
    local i
    for i in $(seq 1 60); do
        docker_answers && { log "docker is up"; return 0; }
        sleep 1
    done
    log "dockerd did not answer within 60s; last log lines:"
    tail -n 20 "$CACHE/dockerd.log" >&2 || true
    return 1
}

# The mirror this machine's apt already uses for Debian's main archive, read from its sources.
debian_mirror() {
    local uri
    uri=$(
        {
            cat /etc/apt/sources.list 2>/dev/null || true
            cat /etc/apt/sources.list.d/*.list 2>/dev/null || true
        } | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' \
          | grep -v -e security -e updates | head -n 1
    )
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
              | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' \
              | grep -v -e security | head -n 1)
    fi
    [ -n "$uri" ] || { log "no Debian mirror found in the apt sources"; return 1; }
    printf '%s\n' "${uri%/}"
}

# Download one package from Debian 11 (bullseye) with an apt configuration of our own: own sources
# list, own lists and an empty dpkg status, so nothing about the machine's apt state changes.
fetch_bullseye() {
    local pkg=$1 dest=$CACHE/bullseye
    mkdir -p "$dest/lists/partial" "$dest/archives/partial" "$dest/sources.d" "$dest/debs"
    : >"$dest/status"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    echo "deb [signed-by=$keyring] $(debian_mirror) bullseye main" >"$dest/sources.list"
    local opts=(
        -o "Dir::Etc::SourceList=$dest/sources.list" -o "Dir::Etc::SourceParts=$dest/sources.d"
        -o "Dir::State::Lists=$dest/lists" -o "Dir::State::Status=$dest/status"
        -o "Dir::Cache::Archives=$dest/archives" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
        -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -o "APT::Architecture=amd64" -qq
    )
    if [ -z "$(ls "$dest/lists" 2>/dev/null | grep -v partial)" ]; then
        apt-get "${opts[@]}" update
    fi
    (cd "$dest/debs" && apt-get "${opts[@]}" download "$pkg")
    ls "$dest/debs/${pkg}"_*.deb | tail -n 1
}

# Unpack Debian 11's package NAME into .cache/NAME once; its binary is .cache/NAME/usr/bin/NAME.
unpack_bullseye() {
    local name=$1
    if [ ! -x "$CACHE/$name/usr/bin/$name" ]; then
        log "fetching $name from Debian 11"
        local deb
        deb=$(fetch_bullseye "$name")
        rm -rf "${CACHE:?}/$name" && dpkg -x "$deb" "$CACHE/$name"
    fi
}

ensure_consul() {
    if command -v consul >/dev/null 2>&1; then return 0; fi
    unpack_bullseye consul
    "$CACHE/consul/usr/bin/consul" version | sed -n 1p >&2
}

ensure_prometheus() {
    unpack_bullseye prometheus
    "$CACHE/prometheus/usr/bin/prometheus" --version 2>&1 | sed -n 1p >&2
}

# Debian's etcd-server, for the etcd:// and skydns2:// tests. Its package would start a machine-wide
# etcd on 2379; a policy-rc.d of our own (only when the machine has none) forbids that, so nothing
# listens because of this step. The tests start their own etcd on free loopback ports.
ensure_etcd() {
    if command -v etcd >/dev/null 2>&1; then return 0; fi
    log "installing etcd-server (its service is not started)"
    local policy=/usr/sbin/policy-rc.d made=0 rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# registrator stack.sh: no service starts during this install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made=1
    fi
    apt_install etcd-server || rc=$?
    if [ "$made" = 1 ]; then rm -f "$policy"; fi
    [ "$rc" = 0 ] || return "$rc"
    # and none at the next boot either (systemd unit, SysV links)
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper disable etcd.service >/dev/null 2>&1 || true
    fi
    rm -f /etc/systemd/system/multi-user.target.wants/etcd.service
    update-rc.d etcd disable >/dev/null 2>&1 || true
    etcd --version | sed -n 1p >&2
}

# nginx-light, installed only when no nginx is there. Installing it starts its service unless
# policy-rc.d forbids that: a service it started is stopped again, one that ran before is not.
ensure_nginx() {
    if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then return 0; fi
    log "installing nginx-light"
    apt_install nginx-light
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
    local pid
    pid=$(cat /run/nginx.pid 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "stopping the nginx service the package started"
        kill -QUIT "$pid" || true
    fi
}

# A bookworm root with python3 and venv, imported as an image: the Dockerfile's BASE_IMAGE where
# no registry is reachable. Built once per machine (a lock keeps two checkouts from racing).
ensure_python_base() {
    if docker image inspect "$PYTHON_BASE" >/dev/null 2>&1; then return 0; fi
    exec 9>/tmp/registrator-python-base.lock
    flock 9
    if docker image inspect "$PYTHON_BASE" >/dev/null 2>&1; then exec 9>&-; return 0; fi
    local root=$CACHE/python-base tar=$CACHE/python-base.tar start=$SECONDS
    if [ ! -s "$tar" ]; then
        command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
        log "building $PYTHON_BASE with debootstrap (once per machine; log: $CACHE/debootstrap.log)"
        rm -rf "$root"
        debootstrap --variant=minbase --include=python3-venv bookworm "$root" "$(debian_mirror)" \
            >"$CACHE/debootstrap.log" 2>&1
        rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
               "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc "$root"/usr/share/man \
               "$root"/usr/share/info "$root"/var/log/*
        tar -C "$root" -cf "$tar.partial" . && mv "$tar.partial" "$tar"
        rm -rf "$root"
    fi
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        --change 'LABEL org.registrator.test=image' "$tar" "$PYTHON_BASE" >/dev/null
    rm -f "$tar"
    log "built $PYTHON_BASE in $((SECONDS - start))s"
    exec 9>&-
}

# Wheels of every dependency for CPython 3.11 on manylinux x86_64, so `docker build` can install
# registrator with no package index (PIP_NO_INDEX=1); the project itself is built in the image.
ensure_wheels() {
    local dest=$ROOT/wheels stamp=$ROOT/wheels/.downloaded deps
    deps=$("$ROOT/.venv/bin/python" - "$ROOT/pyproject.toml" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join([*project["project"]["dependencies"], *project["build-system"]["requires"]]))
PY
)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$deps" ]; then return 0; fi
    log "downloading wheels into $dest"
    local list
    mapfile -t list <<<"$deps"
    "$ROOT/.venv/bin/pip" download -q --dest "$dest" --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 "${list[@]}" \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
    printf '%s\n' "$deps" >"$stamp"
}

ensure_compose() {
    command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
}

# The package's postinst starts a machine-wide haproxy where services may start (systemd, or no
# policy-rc.d): stop and disable it when this install is what brought it, never one that was
# installed before.
ensure_haproxy() {
    if command -v haproxy >/dev/null 2>&1; then return 0; fi
    log "installing haproxy"
    apt_install haproxy
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet haproxy 2>/dev/null; then
        systemctl disable --now haproxy >/dev/null 2>&1 || systemctl stop haproxy
    elif [ -s /run/haproxy.pid ]; then
        invoke-rc.d haproxy stop >/dev/null 2>&1 || true
        update-rc.d haproxy disable >/dev/null 2>&1 || true
    fi
    haproxy -v | sed -n 1p >&2
}

# Debian 12's podman, for the engine tests against Podman's Docker-compatible API. Its packages
# start nothing machine-wide (podman.socket is a systemd unit and stays disabled where there is
# no systemd); the tests give their own `podman system service` its own containers.conf, storage
# and socket, so the machine's Podman settings are never changed here either.
ensure_podman() {
    if command -v podman >/dev/null 2>&1 && command -v catatonit >/dev/null 2>&1; then return 0; fi
    log "installing podman"
    apt_install podman runc netavark catatonit uidmap
    podman --version >&2
}

ensure_image() {
    if docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then return 0; fi
    log "building $TEST_IMAGE from Debian's busybox-static"
    local work=$CACHE/busybox
    rm -rf "$work" && mkdir -p "$work/deb" "$work/rootfs"
    if ! ls "$CACHE"/busybox-static_*.deb >/dev/null 2>&1; then
        [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }
        (cd "$CACHE" && apt-get -o APT::Sandbox::User=root download -qq busybox-static)
    fi
    dpkg -x "$(ls "$CACHE"/busybox-static_*.deb | tail -n 1)" "$work/deb"
    local root=$work/rootfs
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/tmp" "$root/www" \
             "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/root" "$root/var/www"
    cp "$work/deb/bin/busybox" "$root/bin/busybox"
    local applet
    for applet in $("$root/bin/busybox" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    echo ok >"$root/www/index.html"
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' --change 'CMD ["sh"]' \
        --change 'LABEL org.registrator.test=image' - "$TEST_IMAGE" >/dev/null
}

# .venv with the package installed editable: `dev` with its dev tools (tests, linters,
# benchmarks), `runtime` without them (the demo). Each has its own stamp, so `dev` installs the
# dev tools into a venv the demo made, however recent the demo's stamp is.
ensure_venv() {
    local kind=${1:-dev} venv=$ROOT/.venv
    if [ ! -x "$venv/bin/python" ]; then
        log "creating $venv"
        python3 -m venv "$venv"
    fi
    if venv_fresh dev || { [ "$kind" = runtime ] && venv_fresh runtime; }; then return 0; fi
    if [ "$kind" = dev ]; then
        "$venv/bin/pip" install -q --upgrade pip >/dev/null
        pip_install -e "$ROOT[dev]"
    else
        pip_install -e "$ROOT"
    fi
    touch "$venv/.installed-$kind"
}

# pip install into .venv, without pip's warning, once per package, about each configured
# find-links or index location that does not exist (as ensure_wheels does).
pip_install() {
    "$ROOT/.venv/bin/pip" install -q "$@" \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

# Whether .venv holds the `dev` or `runtime` install of the current pyproject.toml.
venv_fresh() {
    local stamp=$ROOT/.venv/.installed-$1
    [ -f "$stamp" ] && [ ! "$ROOT/pyproject.toml" -nt "$stamp" ]
}

main() {
    local steps=("$@")
    [ ${#steps[@]} -gt 0 ] || steps=(all)
    local s
    for s in "${steps[@]}"; do
        case $s in
            docker) ensure_docker ;;
            consul) ensure_consul ;;
            prometheus) ensure_prometheus ;;
            etcd) ensure_etcd ;;
            nginx) ensure_nginx ;;
            image) ensure_docker && ensure_image ;;
            base) ensure_docker && ensure_python_base ;;
            wheels) ensure_venv && ensure_wheels ;;
            compose) ensure_compose ;;
            haproxy) ensure_haproxy ;;
            podman) ensure_podman ;;
            venv) ensure_venv dev ;;
            demo) ensure_docker && ensure_consul && ensure_image && ensure_venv runtime ;;
            all)
                ensure_docker && ensure_consul && ensure_prometheus && ensure_etcd && ensure_nginx \
                    && ensure_image && ensure_venv && ensure_wheels && ensure_python_base \
                    && ensure_compose && ensure_haproxy && ensure_podman
                ;;
            *) log "unknown step: $s"; return 2 ;;
        esac
    done
}

main "$@"
