"""`python -m benchmarks.fleet --fleet 10x50`: K hosts x M containers on a real Consul cluster.

The fleet of harness/fleet.py (3 servers, a client agent and a registrator per host, nginx in
front of the servers), with M containers on each of the K hosts, measured three ways:

- start: every registrator started at once, M containers already running on each host ->
  every service in every server's own copy of the catalog (`?stale`, polled every 0.5 s);
  also when the registrators' first reconciles ended and when every agent held its services;
- write load: the catalog registrations and deregistrations the servers applied, from
  Consul's own telemetry (`/v1/agent/metrics?format=prometheus`, summed over the servers),
  during the start and over an idle window with `--resync-interval` on (it must be 0); and
  the registrators' own writes, from their `reconcile.done` lines;
- agent restart: a host's agent killed (its services fail with its node), then started with
  an empty data directory -> that host whole again: its registrator has put its services back
  in the agent and every server lists all K x M instances as passing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker

from benchmarks.docker_side import BENCH_LABEL, BENCH_PID_LABEL, PARALLEL_CALLS, leftovers
from harness import TEST_IMAGE, wait_until
from harness.fleet import Fleet, HostRegistrator

SERVICE = "fleet-web"


@dataclass
class Start:
    converged: float  # registrators started -> every service in every server's catalog
    reconciled: float  # -> the slowest registrator's first full reconcile done
    in_agents: float  # -> every agent holds its host's services
    imports: float  # -> the slowest registrator's `registrator.started` line
    inspected: int  # containers the slowest first reconcile inspected (all on the engine)
    catalog_writes: int
    registrator_writes: int


@dataclass
class Idle:
    seconds: float
    catalog_writes: int
    registrator_writes: int
    resyncs: int
    agent_checks: int


@dataclass
class Restart:
    host: int
    failing: float  # agent killed -> its services no longer passing on the servers
    answering: float  # agent started empty -> its HTTP API answers
    joined: float  # -> it knows the cluster's leader
    restored: float  # -> its registrator has put every service back in it
    whole: float  # -> every server lists every instance as passing again
    writes: int  # catalog writes from the restart to whole


@dataclass
class Results:
    hosts: int
    per_host: int
    start: Start
    idle: Idle
    restarts: list[Restart] = field(default_factory=list)
    machine: str = ""


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    p.add_argument("--fleet", default="10x50", help="HOSTSxCONTAINERS (default 10x50)")
    p.add_argument("--resync", type=float, default=5, help="registrators' --resync-interval")
    p.add_argument("--idle", type=float, default=60, help="seconds of the idle window")
    p.add_argument("--restarts", type=int, default=3, help="agent restarts measured")
    p.add_argument("--workdir", type=Path, help="logs go here (default: a temporary directory)")
    args = p.parse_args(argv)
    hosts, _, per_host = args.fleet.lower().partition("x")
    args.hosts, args.per_host = int(hosts), int(per_host)
    return args


class HostContainers:
    """M containers per host: `sleep`, `ports` ports exposed from 80 on (registered with
    --internal): one service per port, named SERVICE, or `SERVICE-<port>` with several."""

    def __init__(self, api: docker.APIClient, fleet: Fleet, run: str, *, ports: int = 1) -> None:
        self.api, self.fleet, self.run = api, fleet, run
        self.ports = list(range(80, 80 + ports))
        self.names: dict[int, list[str]] = {}

    @property
    def services(self) -> list[str]:
        """The service names the containers' ports register as."""
        several = len(self.ports) > 1
        return [f"{SERVICE}-{port}" if several else SERVICE for port in self.ports]

    def start(self, per_host: int) -> None:
        jobs = [(k, f"fleet-{self.run}-{k}-{i}") for k in self.fleet.hosts for i in range(per_host)]
        for k, name in jobs:
            self.names.setdefault(k, []).append(name)
        with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
            list(pool.map(lambda job: self.start_one(*job), jobs))

    def start_one(
        self,
        host: int,
        name: str,
        *,
        command: tuple[str, ...] = ("sleep", "3600"),
        environment: dict[str, str] | None = None,
    ) -> None:
        created = self.api.create_container(
            TEST_IMAGE,
            command=list(command),
            environment=environment or {"SERVICE_NAME": SERVICE},
            labels={
                BENCH_LABEL: self.run,
                BENCH_PID_LABEL: str(os.getpid()),
                **self.fleet.labels(host),
            },
            ports=self.ports,
            name=name,
            stop_signal="SIGKILL",
        )
        self.api.start(created["Id"])

    def expected(self, host: int | None = None) -> set[str]:
        hosts = self.fleet.hosts if host is None else [host]
        return {
            f"{self.fleet.host_name(k)}:{name}:{port}"
            for k in hosts
            for name in self.names.get(k, [])
            for port in self.ports
        }

    def remove_all(self) -> None:
        """One at a time: dockerd 20.10's libnetwork has deadlocked twice here while removing
        several hundred containers four at a time (moby/moby#46661)."""
        for container in leftovers(self.api, run=self.run):
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(container, force=True)


def in_every_catalog(
    fleet: Fleet, expected: set[str], services: tuple[str, ...] = (SERVICE,)
) -> bool:
    """Whether every server's own catalog holds exactly `expected` under `services`."""
    for server in fleet.servers:
        entries = [e for name in services for e in fleet.catalog(server, name)]
        if len(entries) != len(expected) or {e["ServiceID"] for e in entries} != expected:
            return False
    return True


def passing_everywhere(fleet: Fleet, expected: set[str]) -> bool:
    return all(
        {e["Service"]["ID"] for e in fleet.passing(server, SERVICE)} == expected
        for server in fleet.servers
    )


def in_agents(fleet: Fleet, containers: HostContainers, hosts: list[int]) -> bool:
    return all(containers.expected(k) <= set(fleet.client(k).services()) for k in hosts)


def _epoch(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(record["time"])).timestamp()


def full_passes(registrator: HostRegistrator, scope: str = "full") -> list[float]:
    """When each reconcile of `scope` ended, as epoch seconds from its log line."""
    return [_epoch(r) for r in registrator.records("reconcile.done") if r.get("scope") == scope]


def elapsed(
    since: float, condition: Callable[[], bool], *, timeout: float = 900, interval: float = 0.5
) -> float:
    """Seconds from `since` (monotonic) until `condition` holds, polled every `interval`."""
    wait_until(condition, timeout=timeout, interval=interval)
    return time.monotonic() - since


def measure_start(fleet: Fleet, containers: HostContainers) -> Start:
    expected, hosts = containers.expected(), list(fleet.hosts)
    writes = fleet.catalog_writes()
    wall, started = time.time(), time.monotonic()
    fleet.start_registrators()
    agents = (
        0.0 if fleet.agentless else elapsed(started, lambda: in_agents(fleet, containers, hosts))
    )
    services = tuple(containers.services)
    converged = elapsed(started, lambda: in_every_catalog(fleet, expected, services))
    firsts = [
        next(x for x in r.records("reconcile.done") if x.get("scope") == "full")
        for r in fleet.registrators
    ]
    started_lines = [r.records("registrator.started")[0] for r in fleet.registrators]
    return Start(
        converged=converged,
        reconciled=max(full_passes(r)[0] for r in fleet.registrators) - wall,
        in_agents=agents,
        imports=max(_epoch(x) for x in started_lines) - wall,
        inspected=max(int(x.get("inspected", 0)) for x in firsts),
        catalog_writes=fleet.catalog_writes() - writes,
        registrator_writes=sum(r.writes() for r in fleet.registrators),
    )


def measure_idle(fleet: Fleet, seconds: float) -> Idle:
    """A window with nothing changing in Docker: resyncs and agent checks run, writing nothing."""

    def counts() -> tuple[int, int, int, int]:
        registrators = fleet.registrators
        return (
            fleet.catalog_writes(),
            sum(r.writes() for r in registrators),
            sum(len(full_passes(r)) for r in registrators),
            sum(len(full_passes(r, "agent")) for r in registrators),
        )

    before = counts()
    time.sleep(seconds)  # the window measured, not a wait for something
    after = counts()
    catalog, written, resyncs, checks = (a - b for a, b in zip(after, before, strict=True))
    return Idle(seconds, catalog, written, resyncs, checks)


def measure_restart(fleet: Fleet, containers: HostContainers, host: int) -> Restart:
    expected, agent = containers.expected(), fleet.client(host)
    mine = containers.expected(host)
    killed = time.monotonic()
    agent.kill()
    failing = elapsed(killed, lambda: passing_everywhere(fleet, expected - mine), timeout=120)
    writes, started = fleet.catalog_writes(), time.monotonic()
    agent.start(empty=True)
    poll = {"timeout": 300, "interval": 0.1}
    answering = elapsed(started, agent.answers, **poll)
    joined = elapsed(started, lambda: bool(agent.leader()), **poll)
    restored = elapsed(started, lambda: in_agents(fleet, containers, [host]), **poll)
    whole = elapsed(started, lambda: passing_everywhere(fleet, expected), **poll)
    written = fleet.catalog_writes() - writes
    return Restart(host, failing, answering, joined, restored, whole, written)


def table(r: Results, resync: float) -> str:
    s, i = r.start, r.idle
    rows = [
        (
            "topology",
            f"3 servers, {r.hosts} client agents + registrators, nginx; "
            f"{r.hosts} x {r.per_host} = {r.hosts * r.per_host} containers",
        ),
        (
            "start: all registrators started -> every service in every server's catalog",
            f"{s.converged:.1f} s",
        ),
        ("  ... every registrator has logged `registrator.started`", f"{s.imports:.1f} s"),
        (
            "  ... slowest registrator's first reconcile done (containers it inspected)",
            f"{s.reconciled:.1f} s ({s.inspected})",
        ),
        ("  ... every agent holds its host's services", f"{s.in_agents:.1f} s"),
        ("start: catalog writes applied by the servers", f"{s.catalog_writes}"),
        ("start: services written by the registrators", f"{s.registrator_writes}"),
        (
            f"idle {i.seconds:.0f} s, resync every {resync:g} s: catalog / registrator writes",
            f"{i.catalog_writes} / {i.registrator_writes}",
        ),
        ("  ... resyncs / agent checks run in the window", f"{i.resyncs} / {i.agent_checks}"),
    ]
    hosts = ", ".join(str(x.host) for x in r.restarts)
    restarts = [
        (f"agent killed -> its services fail on every server (hosts {hosts})", "failing"),
        ("agent started empty -> its HTTP API answers", "answering"),
        ("  ... it has joined the cluster (knows the leader)", "joined"),
        ("  ... its registrator has put every service back in it", "restored"),
        ("  ... host whole: every server lists every instance as passing", "whole"),
    ]
    for name, attribute in restarts:
        rows.append((name, " / ".join(f"{getattr(x, attribute):.1f}" for x in r.restarts) + " s"))
    rows.append(("  ... catalog writes from the restart to whole", _each(r, "writes")))
    rows.append(("machine", r.machine))
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _each(r: Results, attribute: str) -> str:
    return " / ".join(str(getattr(x, attribute)) for x in r.restarts)


def run(args: argparse.Namespace, workdir: Path) -> Results:
    api = docker.APIClient(timeout=120, **docker.utils.kwargs_from_env())
    run_id = uuid.uuid4().hex[:8]
    load, others = os.getloadavg()[0], len(api.containers(all=True))
    registrator_args = ("--resync-interval", str(args.resync), "--internal")
    fleet = Fleet(workdir, hosts=args.hosts, registrator_args=registrator_args, run=run_id)
    containers = HostContainers(api, fleet, run_id)
    try:
        fleet.start(registrators=False)
        containers.start(args.per_host)
        print(f"{args.hosts * args.per_host} containers running", file=sys.stderr)
        start = measure_start(fleet, containers)
        print(f"start: {start}", file=sys.stderr)
        idle = measure_idle(fleet, args.idle)
        print(f"idle: {idle}", file=sys.stderr)
        step = max(1, args.hosts // max(1, args.restarts))
        chosen = list(fleet.hosts)[::step][: args.restarts]
        restarts = [measure_restart(fleet, containers, k) for k in chosen]
    finally:
        fleet.stop()
        containers.remove_all()
        api.close()
    machine = (
        f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
        f"{others} containers of others on the engine"
    )
    return Results(args.hosts, args.per_host, start, idle, restarts, machine)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        results = run(args, workdir)
        print(table(results, args.resync))
    return 0


if __name__ == "__main__":
    sys.exit(main())
