"""Benchmarks of registrator against the real Docker engine and a real Consul agent.

`scripts/bench.sh` (or `python -m benchmarks`) runs them and prints a table; docs/benchmarks.md
explains the figures. Timings live here, never in the test suite.
"""
