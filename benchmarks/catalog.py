"""`python -m benchmarks.catalog --fleet 3x100`: agent mode against catalog mode, one run.

One fleet of harness/fleet.py (3 Consul servers on loopback addresses, nginx round-robin in
front of them, K hosts with M containers each, `--ports` services per container), measured
twice on the same servers: first in agent mode, where every host has a client agent and its
registrator writes to it (`consul://`), then, once those agents have left and their
containers are gone, in catalog mode, where no host has an agent and every registrator
writes Consul's catalog through nginx (`consul-catalog://`). Every registrator talks through
a counting proxy of its own. Each mode is measured the same ways:

- start: every registrator started at once, M containers already running on each host ->
  every service in every server's own copy of the catalog (`?stale`);
- event: one container started on host 1 (from Docker's answer to the start) -> its services
  in every server's catalog, one at a time (p50/p99 over `--events`), polled every 20 ms;
- bursts of `--burst` services on host 1, and the writes the servers applied for them: one
  at Docker's pace (the containers started 4 at a time, as they come), and one that arrives
  together (host 1's registrator stopped with SIGSTOP while they start, then continued);
- idle: a window with nothing changing and `--resync-interval` on: the writes the servers
  applied, the services the registrators wrote, and the requests each registrator made;
- probes: `--checks` containers with an HTTP check every `--check-interval` on host 1 ->
  the CPU host 1's registrator (and in agent mode its agent, which runs the checks there)
  spends over a window, against the same processes' CPU in the idle window, and the writes.

The writes are the servers' own telemetry (`/v1/agent/metrics?format=prometheus`), summed
over the three servers: a write is counted once, by the server whose endpoint applied it (the
leader; the others forward).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import docker

from benchmarks.catalog_report import table
from benchmarks.docker_side import PARALLEL_CALLS
from benchmarks.fleet import HostContainers, Idle, Start, measure_idle, measure_start
from benchmarks.proxy import CountingProxy, counts
from benchmarks.stats import Summary
from harness import wait_until
from harness.fleet import Fleet

#: what a server applied: registrations and deregistrations (agent mode's anti-entropy, or
#: catalog mode's single writes) and transactions (catalog mode's batches)
APPLIED = {
    "consul_catalog_register_count": "register",
    "consul_catalog_deregister_count": "deregister",
    "consul_txn_apply_count": "txn",
}
#: the service the probed containers register as: busybox httpd, checked at /hostname
PROBED = "fleet-probed"
#: catalog mode's session TTL here: host 1's registrator is stopped through a burst's start
SESSION_TTL = "60"


@dataclass
class Burst:
    seconds: float
    applied: dict[str, int]


@dataclass
class Requests:
    """What the registrators asked in the idle window: per host and resync interval."""

    per_interval: float
    routes: Counter[str]


@dataclass
class Probes:
    checks: int
    interval: float
    window: float
    cpu: dict[str, float]  # process -> CPU seconds per minute in the probe window
    idle_cpu: dict[str, float]  # process -> CPU seconds per minute in the idle window
    applied: dict[str, int]  # writes the servers applied in the probe window


@dataclass
class ModeResults:
    mode: str
    start: Start
    events: Summary
    paced: Burst
    together: Burst
    idle: Idle
    applied_idle: dict[str, int]
    requests: Requests
    probes: Probes | None


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


def everywhere(fleet: Fleet, services: list[str], ids: set[str]) -> bool:
    """Whether every server's own copy of the catalog lists all of `ids`."""
    return all(
        ids <= {e["ServiceID"] for name in services for e in fleet.catalog(s, name)}
        for s in fleet.servers
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Proxies:
    """A counting proxy in front of whatever each registrator talks to (`Fleet(front=)`)."""

    def __init__(self) -> None:
        self.by_host: dict[int, CountingProxy] = {}
        self.started: list[CountingProxy] = []

    def front(self, k: int, upstream: str) -> str:
        # longer than catalog mode's blocking queries wait
        proxy = CountingProxy(upstream, timeout=600).start()
        self.by_host[k] = proxy
        self.started.append(proxy)
        return proxy.address

    def marks(self) -> dict[int, int]:
        return {k: p.mark() for k, p in self.by_host.items()}

    def routes(self, marks: dict[int, int]) -> Counter[str]:
        found: Counter[str] = Counter()
        for k, proxy in self.by_host.items():
            found += counts(proxy.exchanges(since=marks[k]))
        return found

    def stop(self) -> None:
        for proxy in self.started:
            proxy.stop()


class Starter:
    """Containers started while the registrators run, on host 1: `fleet-<run>-1-<tag><i>`."""

    def __init__(self, containers: HostContainers) -> None:
        self.containers = containers

    def start(
        self,
        tag: str,
        count: int,
        *,
        command: tuple[str, ...] = ("sleep", "3600"),
        environment: dict[str, str] | None = None,
    ) -> set[str]:
        names = [f"fleet-{self.containers.run}-1-{tag}{i}" for i in range(count)]
        self.containers.names.setdefault(1, []).extend(names)
        with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
            list(
                pool.map(
                    lambda name: self.containers.start_one(
                        1, name, command=command, environment=environment
                    ),
                    names,
                )
            )
        host = self.containers.fleet.host_name(1)
        return {f"{host}:{name}:{port}" for name in names for port in self.containers.ports}


def measure_events(fleet: Fleet, starter: Starter, count: int) -> Summary:
    samples, services = [], starter.containers.services
    for i in range(count):
        ids = starter.start(f"e{i}-", 1)
        started = time.monotonic()  # Docker answered the start: its event is on its way
        wait_until(partial(everywhere, fleet, services, ids), timeout=120, interval=0.02)
        samples.append((time.monotonic() - started) * 1000)
    return Summary.of(samples)


def measure_burst(fleet: Fleet, starter: Starter, count: int, *, together: bool) -> Burst:
    """`count` containers started on host 1; `together`: with host 1's registrator stopped
    (SIGSTOP) until Docker has answered every start, so their events arrive at once."""
    process = fleet.registrator(1).process
    assert process is not None
    before = applied(fleet)
    if together:
        process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        ids = starter.start("t" if together else "p", count)
    finally:
        if together:
            process.send_signal(signal.SIGCONT)
            started = time.monotonic()  # from the moment the registrator may read them
    services = starter.containers.services
    wait_until(partial(everywhere, fleet, services, ids), timeout=600, interval=0.1)
    return Burst(time.monotonic() - started, since(before, fleet))


def probing(fleet: Fleet) -> dict[str, int]:
    """The processes on host 1 that run its checks, or may: name -> pid."""
    registrator = fleet.registrator(1).process
    assert registrator is not None
    found = {"registrator": registrator.pid}
    if not fleet.agentless and fleet.client(1).process is not None:
        found["agent"] = fleet.client(1).process.pid  # type: ignore[union-attr]
    return found


def cpu_per_minute(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU seconds each process spends over a window of `seconds`, per minute."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)  # the window measured, not a wait for something
    return {name: (cpu_seconds(pid) - before[name]) * 60 / seconds for name, pid in pids.items()}


def measure_probes(
    fleet: Fleet, starter: Starter, args: argparse.Namespace, idle_cpu: dict[str, float]
) -> Probes:
    environment = {
        "SERVICE_NAME": PROBED,
        "SERVICE_CHECK_HTTP": "/hostname",
        "SERVICE_CHECK_INTERVAL": f"{args.check_interval:g}s",
    }
    command = ("httpd", "-f", "-p", "80", "-h", "/etc")
    starter.start("c", args.checks, command=command, environment=environment)

    def all_passing() -> bool:
        return all(len(fleet.passing(s, PROBED)) == args.checks for s in fleet.servers)

    wait_until(all_passing, timeout=300, interval=0.5)
    before = applied(fleet)
    cpu = cpu_per_minute(probing(fleet), args.probe_window)
    return Probes(
        args.checks, args.check_interval, args.probe_window, cpu, idle_cpu, since(before, fleet)
    )


def measure_mode(
    fleet: Fleet, containers: HostContainers, proxies: Proxies, args: argparse.Namespace
) -> ModeResults:
    mode = "catalog" if fleet.agentless else "agent"
    starter = Starter(containers)
    containers.start(args.per_host)
    start = measure_start(fleet, containers)
    print(f"{mode} start: {start}", file=sys.stderr)
    events = measure_events(fleet, starter, args.events)
    per_burst = max(1, args.burst // len(containers.ports))
    paced = measure_burst(fleet, starter, per_burst, together=False)
    together = measure_burst(fleet, starter, per_burst, together=True)
    print(f"{mode} bursts: {paced} {together}", file=sys.stderr)
    before, marks = applied(fleet), proxies.marks()
    pids = probing(fleet)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    idle = measure_idle(fleet, args.idle)
    applied_idle = since(before, fleet)
    idle_cpu = {n: (cpu_seconds(p) - cpu_before[n]) * 60 / args.idle for n, p in pids.items()}
    routes = proxies.routes(marks)
    intervals = args.idle / args.resync * args.hosts
    requests = Requests(sum(routes.values()) / intervals, routes)
    print(f"{mode} idle: {idle} requests {dict(routes)}", file=sys.stderr)
    probes = measure_probes(fleet, starter, args, idle_cpu) if args.checks else None
    print(f"{mode} probes: {probes}", file=sys.stderr)
    return ModeResults(mode, start, events, paced, together, idle, applied_idle, requests, probes)


def run(args: argparse.Namespace, workdir: Path) -> list[ModeResults]:
    """Agent mode, then catalog mode on the same servers, each on containers of its own."""
    api = docker.APIClient(timeout=120, **docker.utils.kwargs_from_env())
    run_id, proxies = uuid.uuid4().hex[:8], Proxies()
    resync = ("--resync-interval", str(args.resync), "--internal")
    fleet = Fleet(workdir, hosts=args.hosts, registrator_args=resync, run=run_id)
    fleet.front = proxies.front
    results: list[ModeResults] = []
    try:
        fleet.start(registrators=False)
        for mode in ("agent", "catalog"):
            if mode == "catalog":
                fleet.go_agentless("node", (*resync, "--session-ttl", SESSION_TTL))
            containers = HostContainers(api, fleet, f"{run_id}{mode[0]}", ports=args.ports)
            try:
                results.append(measure_mode(fleet, containers, proxies, args))
            finally:
                containers.remove_all()
        return results
    finally:
        fleet.stop()
        proxies.stop()
        api.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.catalog", description=__doc__)
    p.add_argument("--fleet", default="3x100", help="HOSTSxCONTAINERS (default 3x100)")
    p.add_argument("--ports", type=int, default=1, help="services (exposed ports) per container")
    p.add_argument("--events", type=int, default=20, help="single events timed per mode")
    p.add_argument("--burst", type=int, default=100, help="services in each burst")
    p.add_argument("--resync", type=float, default=5, help="registrators' --resync-interval")
    p.add_argument("--idle", type=float, default=30, help="seconds of the idle window")
    p.add_argument("--checks", type=int, default=100, help="HTTP checks probed (0: none)")
    p.add_argument("--check-interval", type=float, default=10, help="seconds between probes")
    p.add_argument("--probe-window", type=float, default=60, help="seconds of CPU measured")
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
        results = run(args, workdir)
    machine = f"Load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
    print(table(results, args, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
