#!/usr/bin/env bash
# Installs everything (Docker engine, Consul, the test image, the venv), then runs the linters
# and the whole test suite, integration tests included, against the real daemon and agent.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/stack.sh all

echo "== ruff"; .venv/bin/ruff check -q . && .venv/bin/ruff format --check -q .
echo "== mypy"; .venv/bin/mypy
echo "== import contracts"; .venv/bin/lint-imports
echo "== pytest"; exec .venv/bin/python -m pytest "$@"
