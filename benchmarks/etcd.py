"""`python -m benchmarks.etcd [--sequential 20] [--n 100]`: registration latency and bursts
with an etcd:// registry, to set beside `python -m benchmarks` (Consul).

Latency: Docker's own event time (`timeNano`) to the moment the key appears in (or leaves)
etcd, polled every millisecond. Burst: N containers started at once, last `start` event to the
last of their keys seen (the prefix polled every 5 ms); removal likewise. etcd is a real
single-member server of the benchmark's own on free loopback ports.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import docker

from benchmarks.docker_side import BenchContainers, EventTimes
from benchmarks.stats import percentile
from harness import RegistratorProcess, wait_until
from harness.etcd import EtcdServer

MS = 1_000_000
PREFIX = "/bench"


def _ids(etcd: EtcdServer, identity: str) -> set[str]:
    """Service IDs of this run's keys."""
    return {
        key.rsplit("/", 1)[-1]
        for key in etcd.keys(PREFIX + "/")
        if key.rsplit("/", 1)[-1].startswith(identity + ":")
    }


def _has(etcd: EtcdServer, identity: str, service: str, present: bool) -> bool:
    return (service in _ids(etcd, identity)) == present


def _until(condition: Callable[[], bool], interval: float) -> int:
    def check() -> int | None:
        now = time.time_ns()
        return now if condition() else None

    return wait_until(check, timeout=120, interval=interval, what="etcd keys")


def sequential(
    etcd: EtcdServer, boxes: BenchContainers, events: EventTimes, identity: str, count: int
) -> tuple[list[float], list[float]]:
    up: list[float] = []
    down: list[float] = []
    for _ in range(count):
        (container,) = boxes.create(1)
        sid = f"{identity}:{boxes.names[container]}:80"
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(boxes.start, [container])
            seen = _until(partial(_has, etcd, identity, sid, True), 0.001)
            call.result()
        up.append((seen - events.wait([container], "start")[0]) / MS)
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(boxes.kill, container)
            gone = _until(partial(_has, etcd, identity, sid, False), 0.001)
            call.result()
        down.append((gone - events.wait([container], "die")[0]) / MS)
        boxes.remove([container])
    return up, down


def burst(
    etcd: EtcdServer, boxes: BenchContainers, events: EventTimes, identity: str, count: int
) -> tuple[float, float]:
    made = boxes.create(count)
    boxes.start(made)
    last_start = max(events.wait(made, "start", timeout=120))
    seen = _until(lambda: len(_ids(etcd, identity)) == count, 0.005)
    boxes.remove(made)
    last_die = max(events.wait(made, "die", timeout=120))
    gone = _until(lambda: not _ids(etcd, identity), 0.005)
    return (seen - last_start) / MS, (gone - last_die) / MS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.etcd", description=__doc__)
    p.add_argument("--sequential", type=int, default=20, help="containers started one by one")
    p.add_argument("--n", type=int, default=100, help="containers in a burst")
    args = p.parse_args(argv)
    run = uuid.uuid4().hex[:8]
    identity = f"bench-{run}"
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        etcd = EtcdServer(workdir / "etcd").start()
        stack.callback(etcd.stop)
        api = docker.APIClient(timeout=120, **docker.utils.kwargs_from_env())
        stack.callback(api.close)
        boxes = BenchContainers(api, run)
        stack.callback(boxes.remove_all)
        events = EventTimes(api, run)
        stack.callback(events.close)
        uri = etcd.uri(PREFIX)
        options = [uri, "--hostname", identity, "--log-format", "json", "--log-level", "DEBUG"]
        registrator = RegistratorProcess(options, workdir / "registrator.log").start()
        stack.callback(registrator.stop)
        registrator.wait_for_log('"scope": "full"', timeout=60)
        up, down = sequential(etcd, boxes, events, identity, args.sequential)
        burst_up, burst_down = burst(etcd, boxes, events, identity, args.n)
    for name, values in (("register", up), ("deregister", down)):
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(f"etcd {name} latency ms (n={len(values)}): p50 {p50:.1f}  p95 {p95:.1f}")
    print(f"etcd burst of {args.n}: all registered {burst_up:.0f} ms after the last start, ")
    print(f"  all removed {burst_down:.0f} ms after the last die")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
