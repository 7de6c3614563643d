"""`python -m benchmarks [--n 100] [--sequential 50]`: run every scenario, print the table.

Two registrator processes run, both as a user runs them, pointed at the counting proxy:
the first (no periodic resync) for start-up, latency and bursts, so no resync lands inside a
measurement; the second (a short `--resync-interval`) for the cost of resyncs with nothing
changed and for start-up when everything is already registered.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import docker
import requests.exceptions

from benchmarks.docker_side import BenchContainers, EventTimes, Interrupted, leftovers
from benchmarks.process import Registrator
from benchmarks.proxy import CountingProxy
from benchmarks.report import Results, table
from benchmarks.scenarios import (
    Bench,
    burst_removal,
    burst_start,
    proxy_overhead,
    resync_cost,
    sequential,
    start_up,
)
from harness import ConsulDevAgent, wait_until

#: what docker-py raises when dockerd goes away under a call (another developer restarting it)
DOCKER_GONE = (docker.errors.DockerException, requests.exceptions.ConnectionError)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100, help="containers running / in a burst")
    p.add_argument("--sequential", type=int, default=50, help="containers started one by one")
    p.add_argument("--resyncs", type=int, default=10, help="resyncs measured")
    p.add_argument("--resync-interval", type=float, default=0.5, help="seconds between resyncs")
    p.add_argument("--keep", type=int, default=3, help="containers that must survive the burst")
    p.add_argument("--workdir", type=Path, help="logs go here (default: a temporary directory)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample each registrator with py-spy into WORKDIR/profile-*.txt (collapsed stacks)",
    )
    p.add_argument(
        "--attempts", type=int, default=3, help="runs to try when dockerd restarts under one"
    )
    return p.parse_args(argv)


@contextmanager
def bench_stack(workdir: Path) -> Iterator[Bench]:
    """The agent, the proxy, Docker and the run's containers; all torn down on exit."""
    run = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        agent = ConsulDevAgent(workdir / "consul").start()
        stack.callback(agent.stop)
        proxy = CountingProxy(agent.address).start()
        stack.callback(proxy.stop)
        api = wait_until(_docker_client, timeout=180, interval=1, what="Docker answering")
        stack.callback(api.close)
        _remove_leftovers(api)
        containers = BenchContainers(api, run)
        stack.callback(containers.remove_all)
        events = EventTimes(api, run)
        stack.callback(events.close)
        yield Bench(api, agent, proxy, containers, events, identity=f"bench-{run}")


def _docker_client() -> docker.APIClient | None:
    try:
        return docker.APIClient(timeout=120, **docker.utils.kwargs_from_env())
    except DOCKER_GONE:
        return None


def _remove_leftovers(api: docker.APIClient) -> None:
    """Containers of an earlier run that was killed before it could clean up."""
    found = leftovers(api)
    if found:
        print(f"removing {len(found)} containers left by an earlier run", file=sys.stderr)
        for container in found:
            api.remove_container(container, force=True)


def run_all(bench: Bench, args: argparse.Namespace, workdir: Path) -> Results:
    """Three registrator processes, one after the other, on the same containers and agent.

    Latencies are measured with registrator talking to the agent directly: under load every
    hop through the proxy (another process) waits for a CPU, which is not what users feel.
    The bursts and the resyncs go through the proxy, which times and counts the writes.
    """
    load_before, others = os.getloadavg()[0], len(bench.api.containers(all=True))
    first = bench.containers.create(args.n + args.keep)
    bench.containers.start(first)
    doomed, keep = first[: args.n], first[args.n :]
    direct = f"consul://{bench.agent.address}"
    with _running(bench, _registrator(bench, direct, "latency", workdir, args)) as p:
        up = start_up(bench, p, running=first)
        print(f"start-up: {up.seconds:.2f} s", file=sys.stderr)
        seq = sequential(bench, args.sequential)
        latency_footprint = p.footprint()
    proxied = f"consul://{bench.proxy.address}"
    with _running(bench, _registrator(bench, proxied, "bursts", workdir, args)) as p:
        p.start()
        p.wait_for_reconciles(1)
        removal = burst_removal(bench, doomed, staying=bench.service_ids(keep))
        burst, started = burst_start(bench, args.n, already=bench.service_ids(keep))
        burst_footprint = p.footprint()
    running = keep + started
    resyncer = _registrator(bench, proxied, "resync", workdir, args, resync=args.resync_interval)
    with _running(bench, resyncer) as p:
        again = start_up(bench, p, running=running)
        resync = resync_cost(bench, p, count=args.resyncs, containers=len(running))
        resync_footprint = p.footprint()
    return Results(
        n=args.n,
        start_up=up,
        sequential=seq,
        burst_removal=removal,
        burst_start=burst,
        footprints=(
            ("start-up and latencies", latency_footprint),
            ("bursts", burst_footprint),
            ("resyncs", resync_footprint),
        ),
        resync_start_up=again,
        resync=resync,
        overhead=proxy_overhead(bench),
        machine=f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
        f"end; {others} containers of others on the engine",
    )


def _registrator(
    bench: Bench,
    uri: str,
    name: str,
    workdir: Path,
    args: argparse.Namespace,
    *,
    resync: float = 0,
) -> Registrator:
    """A registrator logging to WORKDIR/NAME.log (and profiled into profile-NAME.txt)."""
    return Registrator(
        uri,
        identity=bench.identity,
        log_path=workdir / f"{name}.log",
        resync=resync,
        profile=workdir / f"profile-{name}.txt" if args.profile else None,
    )


@contextmanager
def _running(bench: Bench, registrator: Registrator) -> Iterator[Registrator]:
    bench.registrator = registrator
    try:
        yield registrator
    finally:
        bench.registrator = None
        registrator.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # The proxy's threads time the agent's answers: let them have the GIL within 0.5 ms.
    sys.setswitchinterval(0.0005)
    with ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, args.attempts + 1):
            try:
                with bench_stack(workdir) as bench:
                    results = run_all(bench, args, workdir)
                print(table(results))
                return 0
            except (Interrupted, *DOCKER_GONE) as e:
                print(f"run {attempt} interrupted: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
