"""`python -m benchmarks.catalog --fleet 3x100`: agent mode against catalog mode, one run.

Two fleets of harness/fleet.py, built the same way in one run one after the other (3 Consul
servers on loopback addresses, nginx round-robin in front of them, K hosts with M containers
each): in agent mode every host has a client agent and its registrator writes to it
(`consul://`); in catalog mode no host has an agent and every registrator writes Consul's
catalog through nginx (`consul-catalog://`). Each fleet is measured the same four ways:

- start: every registrator started at once, M containers already running on each host ->
  every service in every server's own copy of the catalog (`?stale`);
- event: one container started on host 1 (from Docker's answer to the start) -> its service
  in every server's catalog, one at a time (p50/p99 over `--events`), polled every 20 ms;
- burst: 100 containers started at once on host 1 -> all of them in every server's catalog,
  and the writes the servers applied for them (catalog registrations, transactions);
- idle: a window with nothing changing and `--resync-interval` on: the writes the servers
  applied and the services the registrators wrote (both must be 0).

The writes are the servers' own telemetry (`/v1/agent/metrics?format=prometheus`), summed
over the three servers: a write is counted once, by the server whose endpoint applied it (the
leader; the others forward).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import docker

from benchmarks.docker_side import PARALLEL_CALLS
from benchmarks.fleet import SERVICE, HostContainers, Idle, Start, measure_idle, measure_start
from benchmarks.stats import Summary
from harness import wait_until
from harness.fleet import Fleet

MODES = ("agent", "catalog")
#: what a server applied: registrations and deregistrations (agent mode's anti-entropy, or
#: catalog mode's single writes) and transactions (catalog mode's batches)
APPLIED = {
    "consul_catalog_register_count": "register",
    "consul_catalog_deregister_count": "deregister",
    "consul_txn_apply_count": "txn",
}


@dataclass
class Burst:
    seconds: float
    applied: dict[str, int]


@dataclass
class ModeResults:
    mode: str
    start: Start
    events: Summary
    burst: Burst
    idle: Idle
    applied_idle: dict[str, int]


def applied(fleet: Fleet) -> dict[str, int]:
    """What the live servers applied so far, by kind (see `APPLIED`), summed over them."""
    totals = dict.fromkeys(APPLIED.values(), 0)
    for server in fleet.servers:
        url = f"http://{server.http}/v1/agent/metrics?format=prometheus"
        with urllib.request.urlopen(url, timeout=10) as response:
            for line in response.read().decode().splitlines():
                name = line.split(" ")[0]
                if name in APPLIED:
                    totals[APPLIED[name]] += int(float(line.split()[-1]))
    return totals


def since(before: dict[str, int], fleet: Fleet) -> dict[str, int]:
    return {kind: n - before[kind] for kind, n in applied(fleet).items()}


def everywhere(fleet: Fleet, ids: set[str]) -> bool:
    """Whether every server's own copy of the catalog lists all of `ids`."""
    return all(ids <= {e["ServiceID"] for e in fleet.catalog(s, SERVICE)} for s in fleet.servers)


class Starter:
    """Containers started while the registrators run, on host 1: `fleet-<run>-1-<tag><i>`."""

    def __init__(self, containers: HostContainers) -> None:
        self.containers = containers

    def start(self, tag: str, count: int) -> set[str]:
        names = [f"fleet-{self.containers.run}-1-{tag}{i}" for i in range(count)]
        self.containers.names.setdefault(1, []).extend(names)
        with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
            list(pool.map(lambda name: self.containers.start_one(1, name), names))
        return {f"host-1:{name}:80" for name in names}


def measure_events(fleet: Fleet, starter: Starter, count: int) -> Summary:
    samples = []
    for i in range(count):
        ids = starter.start(f"e{i}-", 1)
        started = time.monotonic()  # Docker answered the start: its event is on its way
        wait_until(partial(everywhere, fleet, ids), timeout=120, interval=0.02)
        samples.append((time.monotonic() - started) * 1000)
    return Summary.of(samples)


def measure_burst(fleet: Fleet, starter: Starter, count: int) -> Burst:
    before, started = applied(fleet), time.monotonic()
    ids = starter.start("b", count)
    wait_until(lambda: everywhere(fleet, ids), timeout=600, interval=0.1)
    seconds = time.monotonic() - started
    return Burst(seconds, since(before, fleet))


def measure_mode(mode: str, args: argparse.Namespace, workdir: Path) -> ModeResults:
    api = docker.APIClient(timeout=120, **docker.utils.kwargs_from_env())
    run_id = uuid.uuid4().hex[:8]
    registrator_args = ("--resync-interval", str(args.resync), "--internal")
    fleet = Fleet(
        workdir / mode,
        hosts=args.hosts,
        registrator_args=registrator_args,
        run=run_id,
        agentless=mode == "catalog",
    )
    containers = HostContainers(api, fleet, run_id)
    starter = Starter(containers)
    try:
        fleet.start(registrators=False)
        containers.start(args.per_host)
        start = measure_start(fleet, containers)
        print(f"{mode} start: {start}", file=sys.stderr)
        events = measure_events(fleet, starter, args.events)
        burst = measure_burst(fleet, starter, args.burst)
        before = applied(fleet)
        idle = measure_idle(fleet, args.idle)
        return ModeResults(mode, start, events, burst, idle, since(before, fleet))
    finally:
        fleet.stop()
        containers.remove_all()
        api.close()


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


def table(results: list[ModeResults], args: argparse.Namespace, machine: str) -> str:
    agent, catalog = results

    def row(name: str, a: str, c: str, r: str = "") -> str:
        return f"| {name} | {a} | {c} | {r} |"

    s_ratio = catalog.start.converged / agent.start.converged
    e_ratio = catalog.events.p50 / agent.events.p50
    b_ratio = catalog.burst.seconds / agent.burst.seconds
    lines = [
        f"3 servers, nginx; {args.hosts} hosts x {args.per_host} containers; "
        f"resync every {args.resync:g} s. {machine}",
        "",
        "| measure | agent mode | catalog mode | catalog / agent |",
        "|---|---|---|---|",
        row(
            "start: all registrators started -> every service in every server's catalog",
            f"{agent.start.converged:.1f} s",
            f"{catalog.start.converged:.1f} s",
            f"{s_ratio:.2f}x",
        ),
        row(
            f"event -> visible on every server, p50 / p90 / p99 (n={args.events})",
            agent.events.text(),
            catalog.events.text(),
            f"{e_ratio:.2f}x (p50)",
        ),
        row(
            f"burst of {args.burst} on one host -> all visible on every server",
            f"{agent.burst.seconds:.1f} s",
            f"{catalog.burst.seconds:.1f} s",
            f"{b_ratio:.2f}x",
        ),
        row(
            "  ... writes the 3 servers applied for the burst (summed over them)",
            _kinds(agent.burst.applied),
            _kinds(catalog.burst.applied),
        ),
        row(
            f"idle {args.idle:g} s: writes the servers applied / services registrators wrote",
            f"{_kinds(agent.applied_idle)} / {agent.idle.registrator_writes}",
            f"{_kinds(catalog.applied_idle)} / {catalog.idle.registrator_writes}",
        ),
        row(
            "  ... resyncs run in the window (all registrators)",
            str(agent.idle.resyncs),
            str(catalog.idle.resyncs),
        ),
    ]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.catalog", description=__doc__)
    p.add_argument("--fleet", default="3x100", help="HOSTSxCONTAINERS (default 3x100)")
    p.add_argument("--events", type=int, default=20, help="single events timed per mode")
    p.add_argument("--burst", type=int, default=100, help="containers in the burst")
    p.add_argument("--resync", type=float, default=5, help="registrators' --resync-interval")
    p.add_argument("--idle", type=float, default=30, help="seconds of the idle window")
    p.add_argument("--workdir", type=Path, help="logs go here (default: a temporary directory)")
    args = p.parse_args(argv)
    hosts, _, per_host = args.fleet.lower().partition("x")
    args.hosts, args.per_host = int(hosts), int(per_host)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    load = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        results = [measure_mode(mode, args, workdir) for mode in MODES]
    machine = f"Load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
    print(table(results, args, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
