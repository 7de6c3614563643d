#!/usr/bin/env bash
# Brings up the stack (Docker, Consul, the test image, the venv), then runs the benchmarks
# against the real daemon and Consul dev agents of their own, and prints the table: registrator
# and any peer, side by side in one run, with the floor (raw calls) measured in it.
# Usage: scripts/bench.sh [--n 100] [--sequential 30] [--resync-interval 2] [--workdir DIR]
#          [--profile] [--peer NAME='COMMAND ... consul://{consul}']...
#   e.g. --peer gliderlabs='../shared/anchors/gliderlabs-wrap --hostname {hostname}
#          --ip 127.0.0.1 --resync-interval {resync} consul://{consul}'
#        scripts/bench.sh --fleet 10x50 [--resync 5] [--idle 60] [--restarts 3] [--workdir DIR]
#        (a Consul cluster of 3 servers, 10 hosts with 50 containers each: benchmarks/fleet.py)
# python -m benchmarks --help lists every option; python -m benchmarks.profile FILE reads
# a --profile sample.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/stack.sh all >&2
for arg in "$@"; do
    case $arg in --fleet | --fleet=*) exec .venv/bin/python -m benchmarks.fleet "$@" ;; esac
done
exec .venv/bin/python -m benchmarks "$@"
