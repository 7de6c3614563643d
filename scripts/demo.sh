#!/usr/bin/env bash
# The main job on an embedded default: bring up the stack (Docker, a Consul dev agent), run
# registrator against it, start two demo containers, show what Consul holds, stop one and show
# it deregistered. Everything it started is removed on exit, unless KEEP=1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEMO=$ROOT/.cache/demo
CONSUL_PORT=${CONSUL_PORT:-8500}
CONSUL=127.0.0.1:$CONSUL_PORT
LABEL=org.registrator.demo=1
mkdir -p "$DEMO"

bash scripts/stack.sh demo

pids=()
cleanup() {
    [ "${KEEP:-0}" = 1 ] && { echo "KEEP=1: leaving registrator, Consul and the demo containers running"; return; }
    docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f >/dev/null
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

if curl -fsS "http://$CONSUL/v1/agent/self" >/dev/null 2>&1; then
    echo "using the Consul agent already answering on $CONSUL"
else
    consul_bin=$(command -v consul || echo "$ROOT/.cache/consul/usr/bin/consul")
    rm -rf "$DEMO/consul-data"
    "$consul_bin" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -http-port "$CONSUL_PORT" \
        -grpc-port -1 -data-dir "$DEMO/consul-data" >"$DEMO/consul.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 60); do curl -fsS "http://$CONSUL/v1/status/leader" 2>/dev/null | grep -q : && break; sleep 0.5; done
    echo "started a Consul dev agent on $CONSUL (log: $DEMO/consul.log)"
fi

.venv/bin/registrator --hostname demo --require-label "$LABEL" "consul://$CONSUL" >"$DEMO/registrator.log" 2>&1 &
pids+=($!)
echo "started registrator for the containers labelled $LABEL (log: $DEMO/registrator.log)"

image=registrator-test/busybox:latest
docker run -d --label "$LABEL" --name demo-web -p 0:80 \
    -e SERVICE_NAME=web -e SERVICE_TAGS=demo,http -e SERVICE_REGION=local \
    "$image" httpd -f -p 80 -h /www >/dev/null
docker run -d --label "$LABEL" --name demo-multi -p 0:80 -p 0:8080 \
    --label SERVICE_8080_NAME=admin "$image" sleep 3600 >/dev/null
echo "started containers demo-web and demo-multi"

show() { python3 scripts/show_services.py "$CONSUL"; }
count() { curl -fsS "http://$CONSUL/v1/agent/services" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

for _ in $(seq 1 100); do [ "$(count)" -ge 3 ] && break; sleep 0.1; done
echo; echo "== Consul now holds:"; show
web_port=$(docker port demo-web 80/tcp | head -n 1 | sed 's/.*://')
echo; echo "== GET http://127.0.0.1:$web_port/ (demo-web) answers: $(curl -fsS "http://127.0.0.1:$web_port/")"

docker stop -t 1 demo-web >/dev/null
for _ in $(seq 1 100); do [ "$(count)" -le 2 ] && break; sleep 0.1; done
echo; echo "== after 'docker stop demo-web', Consul holds:"; show
echo; echo "== registrator's log:"; cat "$DEMO/registrator.log"
