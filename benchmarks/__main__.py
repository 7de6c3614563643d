"""`python -m benchmarks [--n 100] [--sequential 30] [--peer NAME=COMMAND]...`: run every
scenario for registrator and each peer, one after the other in the same run, print the table.

Each subject gets a fresh Consul dev agent with the counting proxy in front of it, and the
same scenarios on containers of its own: N + 3 running when it starts (start-up), containers
started and killed one at a time (latency), N removed at once, N started at once (bursts),
then a few resync intervals with nothing changing (idle cost). The floor (raw calls, no
registrator) is measured first, on the same machine and in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import requests.exceptions

from benchmarks import floor
from benchmarks.docker_side import (
    BENCH_LABEL,
    BenchContainers,
    EventTimes,
    Interrupted,
    leftovers,
)
from benchmarks.engines import ENGINES, engine
from benchmarks.proxy import CountingProxy
from benchmarks.report import Results, SubjectResults, merge, table
from benchmarks.scenarios import (
    Bench,
    ProxyOverhead,
    Sequential,
    burst_removal,
    burst_start,
    container_name_of,
    exactly,
    idle,
    proxy_overhead,
    sequential,
    start_up,
)
from benchmarks.subjects import (
    Subject,
    SubjectProcess,
    compiled,
    parse_peer,
    registrator_subject,
)
from harness import ROOT, ConsulDevAgent, wait_until

#: what docker-py raises when dockerd goes away under a call (another developer restarting it)
DOCKER_GONE = (docker.errors.DockerException, requests.exceptions.ConnectionError)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100, help="containers in a burst (N + 3 running)")
    p.add_argument("--sequential", type=int, default=30, help="containers started one by one")
    p.add_argument("--resync-interval", type=float, default=2, help="seconds between resyncs")
    p.add_argument("--idle", type=int, default=3, help="resync intervals of idle time measured")
    p.add_argument("--keep", type=int, default=3, help="containers that survive the burst")
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="a peer run through the same scenarios; placeholders {consul} {hostname} {resync}",
    )
    p.add_argument(
        "--registrator-args", default="", help="extra options for registrator (one string)"
    )
    p.add_argument("--floor-samples", type=int, default=200, help="samples of each raw call")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every subject this many times, in alternating order; samples are pooled",
    )
    p.add_argument("--workdir", type=Path, help="logs go here (default: a temporary directory)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample registrator with py-spy into WORKDIR/profile-registrator.txt",
    )
    p.add_argument(
        "--engine",
        action="append",
        choices=ENGINES,
        help="the engine(s) to run against, one table each (default docker); "
        "podman: a Podman API service of the run's own",
    )
    p.add_argument(
        "--attempts", type=int, default=3, help="runs to try when dockerd restarts under one"
    )
    return p.parse_args(argv)


@dataclass
class DockerSide:
    api: docker.APIClient
    containers: BenchContainers
    events: EventTimes


@contextmanager
def docker_side() -> Iterator[DockerSide]:
    """Docker, the run's containers and their event times; all torn down on exit."""
    run = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        api = wait_until(_docker_client, timeout=180, interval=1, what="Docker answering")
        stack.callback(api.close)
        _remove_leftovers(api)
        containers = BenchContainers(api, run)
        stack.callback(containers.remove_all)
        events = EventTimes(api, run)
        stack.callback(events.close)
        yield DockerSide(api, containers, events)


@contextmanager
def consul_side(workdir: Path, name: str) -> Iterator[tuple[ConsulDevAgent, CountingProxy]]:
    """A fresh agent and the counting proxy in front of it."""
    with ExitStack() as stack:
        agent = ConsulDevAgent(workdir / f"consul-{name}").start()
        stack.callback(agent.stop)
        proxy = CountingProxy(agent.address, key=container_name_of).start()
        stack.callback(proxy.stop)
        yield agent, proxy


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


def measure_floor(
    side: DockerSide, args: argparse.Namespace, workdir: Path
) -> tuple[floor.Floor, ProxyOverhead]:
    """The floor on an agent holding as many services as the scenarios, and the proxy's cost."""
    with consul_side(workdir, "floor") as (agent, proxy):
        (container,) = side.containers.create(1)
        side.containers.start_one(container)

        def cycle() -> None:
            side.containers.kill(container)
            side.containers.start_one(container)

        measured = floor.measure(
            agent=agent.address,
            proxy=proxy.address,
            container=container,
            label=f"{BENCH_LABEL}={side.containers.run}",
            cycle=cycle,
            services=args.n + args.keep,
            samples=args.floor_samples,
        )
        bench = Bench(side.api, agent, proxy, side.containers, side.events)
        overhead = proxy_overhead(bench, samples=args.floor_samples)
        side.containers.remove([container])
    return measured, overhead


def run_subject(
    side: DockerSide, subject: Subject, args: argparse.Namespace, workdir: Path, *, repeat: int
) -> SubjectResults:
    """Every scenario for one subject, on its own agent and containers; its log, profile and
    agent's directory in `workdir` are named after it (and the round, from the second on)."""
    n, resync = args.n, args.resync_interval
    label = subject.name if repeat == 0 else f"{subject.name}-{repeat + 1}"
    with consul_side(workdir, label) as (agent, proxy):
        bench = Bench(side.api, agent, proxy, side.containers, side.events)
        first = side.containers.create(n + args.keep)
        side.containers.start(first)
        side.events.wait(first, "start")
        load = os.getloadavg()[0]
        identity = f"bench-{side.containers.run}"
        argv = subject.argv(consul=proxy.address, hostname=identity, resync=resync)
        sampled = args.profile and subject.python
        profile = workdir / f"profile-{label}.txt" if sampled else None
        process = SubjectProcess(argv, log_path=workdir / f"{label}.log", profile=profile)
        try:
            up = start_up(bench, process, running=first)
            print(f"{subject.name}: start-up {up.seconds:.2f} s", file=sys.stderr)
            seq = sequential(bench, args.sequential)
            _write_samples(workdir / f"{label}-latency.csv", seq)
            doomed, keep = first[:n], first[n:]
            removal = burst_removal(bench, doomed, staying=set(keep))
            burst, started = burst_start(bench, n, already=set(keep))
            quiet = idle(bench, intervals=args.idle, interval=resync)
            at_end = exactly(bench, set(keep) | set(started))
            routes = ", ".join(f"{k} {v}" for k, v in sorted(quiet.routes.items()))
            print(f"{subject.name}: idle {quiet.seconds:.1f} s: {routes}", file=sys.stderr)
            used = process.footprint()
        finally:
            process.stop()
            bench.process = None
            side.containers.remove_all()
    return SubjectResults(
        name=subject.name,
        start_up=up,
        sequential=seq,
        burst_removal=removal,
        burst_start=burst,
        idle=quiet,
        exact_at_end=at_end,
        footprint=used,
        load=(load, os.getloadavg()[0]),
    )


def _write_samples(path: Path, seq: Sequential) -> None:
    """The latency samples, one per line, for looking closer at a run."""
    lines = ["container,action,event_ns,answered_ns,ms"]
    lines += [f"{n},{a},{e},{r},{(r - e) / 1e6:.3f}" for n, a, e, r in seq.samples]
    path.write_text("\n".join(lines) + "\n")


def run_all(subjects: list[Subject], args: argparse.Namespace, workdir: Path) -> Results:
    load_before = os.getloadavg()
    with docker_side() as side:
        others = len(side.api.containers(all=True))
        measured, overhead = measure_floor(side, args, workdir)
        rounds: dict[str, list[SubjectResults]] = {s.name: [] for s in subjects}
        for number in range(args.rounds):
            # every other round in reverse order: no subject always runs while the load rises
            for s in subjects if number % 2 == 0 else subjects[::-1]:
                rounds[s.name].append(run_subject(side, s, args, workdir, repeat=number))
        results = [merge(rounds[s.name]) for s in subjects]
    load_after = os.getloadavg()
    return Results(
        n=args.n,
        running=args.n + args.keep,
        resync=args.resync_interval,
        floor=measured,
        overhead=overhead,
        subjects=results,
        machine=f"{os.cpu_count()} cores; load average (1/5/15 min) "
        f"{'/'.join(f'{x:.1f}' for x in load_before)} at the start, "
        f"{'/'.join(f'{x:.1f}' for x in load_after)} at the end; "
        f"{others} containers of others on the engine",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        subjects = [registrator_subject(args.registrator_args)]
        subjects += [parse_peer(p) for p in args.peer]
    except ValueError as e:
        print(f"benchmarks: {e}", file=sys.stderr)
        return 2
    compiled(ROOT / "registrator")
    # The proxy's threads time the agent's answers: let them have the GIL within 0.5 ms.
    sys.setswitchinterval(0.0005)
    with ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        failed = 0
        for name in args.engine or ["docker"]:
            with engine(name) as described:
                where = workdir if name == "docker" else workdir / name
                failed += not _run_with_attempts(subjects, args, where, described)
    return 1 if failed else 0


def _run_with_attempts(
    subjects: list[Subject], args: argparse.Namespace, workdir: Path, engine: str
) -> bool:
    """One table for this engine; False when every attempt was interrupted."""
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, args.attempts + 1):
        try:
            results = run_all(subjects, args, workdir)
            if args.engine:  # named on the command line: say which table is whose
                print(f"Engine: {engine}\n")
            print(table(results))
            return True
        except (Interrupted, *DOCKER_GONE) as e:
            print(f"run {attempt} interrupted: {e}", file=sys.stderr)
    return False


if __name__ == "__main__":
    sys.exit(main())
