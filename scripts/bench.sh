#!/usr/bin/env bash
# Brings up the stack (Docker, Consul, the test image, the venv), then runs the benchmarks
# against the real daemon and a Consul dev agent of their own, and prints the table.
# Usage: scripts/bench.sh [--n 100] [--sequential 50] [--resyncs 5] [--workdir DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/stack.sh all >&2
exec .venv/bin/python -m benchmarks "$@"
