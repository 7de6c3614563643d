#!/usr/bin/env bash
# Brings up the stack (Docker, Consul, the test image, the venv), then runs the benchmarks
# against the real daemon and a Consul dev agent of their own, and prints the table.
# Usage: scripts/bench.sh [--n 100] [--sequential 50] [--resyncs 5] [--workdir DIR]
#        scripts/bench.sh --fleet 10x50 [--resync 5] [--idle 60] [--restarts 3] [--workdir DIR]
#        (a Consul cluster of 3 servers, 10 hosts with 50 containers each: benchmarks/fleet.py)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/stack.sh all >&2
for arg in "$@"; do
    case $arg in --fleet | --fleet=*) exec .venv/bin/python -m benchmarks.fleet "$@" ;; esac
done
exec .venv/bin/python -m benchmarks "$@"
