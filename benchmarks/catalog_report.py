"""The table of `python -m benchmarks.catalog`: agent mode against catalog mode, a row each."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.catalog import ModeResults, Probes


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


def _row(name: str, agent: str, catalog: str, ratio: str = "") -> str:
    return f"| {name} | {agent} | {catalog} | {ratio} |"


def _cpu(probes: Probes | None) -> str:
    """Each process' CPU seconds per minute with the checks, and in the idle window."""
    if probes is None:
        return "not measured"
    return "; ".join(
        f"{name} {probes.cpu[name]:.2f} (idle {probes.idle_cpu[name]:.2f})" for name in probes.cpu
    )


def _probe_rows(agent: ModeResults, catalog: ModeResults) -> list[str]:
    probes = catalog.probes or agent.probes
    if probes is None:
        return []
    return [
        _row(
            f"{probes.checks} HTTP checks every {probes.interval:g} s on host 1: CPU s per minute "
            f"over {probes.window:g} s, per process (idle window's in brackets)",
            _cpu(agent.probes),
            _cpu(catalog.probes),
        ),
        _row(
            "  ... writes the servers applied in that window (all checks passing)",
            _kinds(agent.probes.applied) if agent.probes else "",
            _kinds(catalog.probes.applied) if catalog.probes else "",
        ),
    ]


def table(results: list[ModeResults], args: argparse.Namespace, machine: str) -> str:
    agent, catalog = results
    services = args.per_host * args.ports
    lines = [
        f"3 servers, nginx; {args.hosts} hosts x {args.per_host} containers x {args.ports} "
        f"ports ({services} services per host); resync every {args.resync:g} s. {machine}",
        "",
        "| measure | agent mode | catalog mode | catalog / agent |",
        "|---|---|---|---|",
        _row(
            "start: all registrators started -> every service in every server's catalog",
            f"{agent.start.converged:.1f} s",
            f"{catalog.start.converged:.1f} s",
            f"{catalog.start.converged / agent.start.converged:.2f}x",
        ),
        _row(
            f"event ({args.ports} services) -> visible on every server, p50 / p90 / p99",
            agent.events.text(),
            catalog.events.text(),
            f"{catalog.events.p50 / agent.events.p50:.2f}x (p50)",
        ),
    ]
    for name, attribute in (("at Docker's pace", "paced"), ("arriving together", "together")):
        a, c = getattr(agent, attribute), getattr(catalog, attribute)
        lines += [
            _row(
                f"burst of {args.burst} services on host 1, {name} -> all on every server",
                f"{a.seconds:.1f} s",
                f"{c.seconds:.1f} s",
                f"{c.seconds / a.seconds:.2f}x",
            ),
            _row("  ... writes the 3 servers applied for it", _kinds(a.applied), _kinds(c.applied)),
        ]
    lines += [
        _row(
            f"idle {args.idle:g} s: writes the servers applied / services registrators wrote",
            f"{_kinds(agent.applied_idle)} / {agent.idle.registrator_writes}",
            f"{_kinds(catalog.applied_idle)} / {catalog.idle.registrator_writes}",
        ),
        _row(
            "  ... requests per registrator and resync interval (resyncs run, all hosts)",
            f"{agent.requests.per_interval:.1f} ({agent.idle.resyncs})",
            f"{catalog.requests.per_interval:.1f} ({catalog.idle.resyncs})",
        ),
        *_probe_rows(agent, catalog),
    ]
    return "\n".join(lines)
