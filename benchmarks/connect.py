"""`python -m benchmarks.connect [--sequential 20]`: what Consul Connect costs, set beside a
plain container in one run.

One Consul dev agent (its sidecar range from the harness' ports) behind the counting proxy, one
registrator: containers are started and killed one at a time, a plain one and a Connect one
(`SERVICE_CONNECT=sidecar` with two upstreams) in turn, so both meet the same load. For each:
registration latency (Docker's `start` event -> the agent answered the registration, which
creates the sidecar in the same write) and the writes the container cost from its start to the
answer to its deregistration, counted at the proxy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import docker

from benchmarks.docker_side import BENCH_LABEL, BenchContainers, EventTimes
from benchmarks.proxy import CountingProxy
from benchmarks.scenarios import Bench, container_name_of, sequential
from benchmarks.stats import Summary
from harness import ConsulDevAgent, RegistratorProcess

CONNECT = {"SERVICE_CONNECT": "sidecar", "SERVICE_CONNECT_UPSTREAMS": "db:19191,dc2:pay:19192"}


def one(bench: Bench) -> tuple[float, int]:
    """Start, register, kill, deregister one container: its registration ms and writes."""
    mark = bench.proxy.mark()
    measured = sequential(bench, 1)
    writes = sum(1 for e in bench.proxy.exchanges(since=mark) if e.write)
    return measured.register_ms[0], writes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.connect", description=__doc__)
    p.add_argument("--sequential", type=int, default=20, help="containers of each kind")
    args = p.parse_args(argv)
    run = uuid.uuid4().hex[:8]
    load_before = os.getloadavg()
    results: dict[str, list[tuple[float, int]]] = {"plain": [], "connect": []}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        agent = ConsulDevAgent(workdir / "consul", sidecar_ports=8).start()
        stack.callback(agent.stop)
        proxy = CountingProxy(agent.address, key=container_name_of).start()
        stack.callback(proxy.stop)
        api = docker.APIClient(timeout=120, **docker.utils.kwargs_from_env())
        stack.callback(api.close)
        benches = {}
        for kind, env in (("plain", {}), ("connect", CONNECT)):
            boxes = BenchContainers(api, f"{run}{kind[0]}", env=env)
            stack.callback(boxes.remove_all)
            events = EventTimes(api, boxes.run)
            stack.callback(events.close)
            benches[kind] = Bench(api, agent, proxy, boxes, events)
        # only this run's containers: others on the engine would write meanwhile
        only = ("--require-label", BENCH_LABEL)
        options = [f"consul://{proxy.address}", "--hostname", f"bench-{run}", *only]
        registrator = RegistratorProcess(options, workdir / "registrator.log").start()
        stack.callback(registrator.stop)
        registrator.wait_for_log("docker.events.subscribed", timeout=60)
        for _ in range(args.sequential):
            for kind, bench in benches.items():
                results[kind].append(one(bench))
    load_after = os.getloadavg()
    for kind, samples in results.items():
        latency = Summary.of([ms for ms, _ in samples]).text()
        writes = sorted({w for _, w in samples})
        print(f"{kind:8} register p50/p90/p99 {latency}; writes per container {writes}")
    loads = ("/".join(f"{x:.1f}" for x in load) for load in (load_before, load_after))
    print(f"{os.cpu_count()} cores; load average (1/5/15 min) {' -> '.join(loads)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
