"""The measured scenarios; each returns plain numbers for the report.

Latencies run from Docker's own event time (`timeNano`) to the moment the service appears in
(or leaves) the agent's `/v1/agent/services`, polled every millisecond while registrator
talks to the agent directly. Bursts are timed by the counting proxy instead (polling every
service would load the two cores being measured): the agent applies a write before it
answers, so the answer's time is when the service became visible.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote

import docker

from benchmarks.docker_side import BenchContainers, EventTimes
from benchmarks.process import Registrator, quiet_resyncs, record_time
from benchmarks.proxy import CountingProxy, Exchange
from benchmarks.stats import percentile
from harness import ConsulDevAgent, wait_until

MS = 1_000_000  # nanoseconds


@dataclass
class Bench:
    """Everything a scenario needs: Docker, the agent, the proxy in front of it, the run's ids."""

    api: docker.APIClient
    agent: ConsulDevAgent
    proxy: CountingProxy
    containers: BenchContainers
    events: EventTimes
    identity: str
    #: the registrator process running now, if any
    registrator: Registrator | None = None
    _poll: http.client.HTTPConnection | None = None

    def check(self) -> None:
        """Raise `Interrupted` when dockerd restarted or registrator exited under the run."""
        self.events.check()
        if self.registrator is not None:
            self.registrator.check_alive()

    def service_id(self, container: str) -> str:
        return f"{self.identity}:{self.containers.names[container]}:80"

    def service_ids(self, containers: Iterable[str]) -> set[str]:
        return {self.service_id(c) for c in containers}

    def bench_services(self) -> set[str]:
        """This run's services in the agent, read from the agent directly."""
        prefix = f"{self.identity}:bench-{self.containers.run}-"
        return {s for s in self.agent.services(owner=self.identity) if s.startswith(prefix)}

    def visible(self, service: str) -> bool:
        """One direct GET of the service from the agent, over a kept-alive connection."""
        if self._poll is None:
            self._poll = http.client.HTTPConnection(self.agent.address, timeout=10)
        self._poll.request("GET", f"/v1/agent/service/{quote(service)}")
        response = self._poll.getresponse()
        response.read()
        return response.status == 200

    def answered(self, services: Iterable[str], *, register: bool, after_ns: int) -> list[int]:
        """When the agent acknowledged each service's (de)registration, waiting for all."""
        wanted = list(services)

        def all_answered() -> list[int] | None:
            self.check()
            times = [self.proxy.answered(s, register=register, after_ns=after_ns) for s in wanted]
            return None if None in times else [t for t in times if t is not None]

        return wait_until(all_answered, timeout=120, interval=0.01, what="agent answers")


@dataclass
class StartUp:
    containers: int
    seconds: float
    to_started_log: float
    reconcile_ms: float
    registered_all: bool


def start_up(bench: Bench, registrator: Registrator, *, running: list[str]) -> StartUp:
    """Process start -> first complete reconcile, with `running` containers already there."""
    registrator.start()
    first = registrator.wait_for_reconciles(1)[0]
    started = registrator.records("registrator.started")[0]
    return StartUp(
        containers=len(running),
        seconds=record_time(first) - registrator.started_at,
        to_started_log=record_time(started) - registrator.started_at,
        reconcile_ms=float(first["seconds"]) * 1000,
        registered_all=bench.service_ids(running) <= bench.bench_services(),
    )


@dataclass
class Sequential:
    register_ms: list[float] = field(default_factory=list)
    deregister_ms: list[float] = field(default_factory=list)


def sequential(bench: Bench, count: int) -> Sequential:
    """Start one container, wait until registered; kill it, wait until gone; `count` times."""
    result = Sequential()
    for _ in range(count):
        (container,) = bench.containers.create(1)
        service = bench.service_id(container)
        seen = _polling(
            bench, service, present=True, during=partial(bench.containers.start, [container])
        )
        (started,) = bench.events.wait([container], "start")
        result.register_ms.append((seen - started) / MS)
        gone = _polling(
            bench, service, present=False, during=partial(bench.containers.kill, container)
        )
        (died,) = bench.events.wait([container], "die")
        result.deregister_ms.append((gone - died) / MS)
        bench.containers.remove([container])
    return result


def _polling(bench: Bench, service: str, *, present: bool, during: Callable[[], object]) -> int:
    """Run `during` (a Docker call, which returns only when Docker is done) while polling.

    Polling starts at once: Docker's kill returns after its clean-up, long after the `die`.
    """
    with ThreadPoolExecutor(1) as pool:
        docker_call = pool.submit(during)
        try:
            return _poll_until(bench, service, present=present)
        finally:
            docker_call.result()


def _poll_until(bench: Bench, service: str, *, present: bool) -> int:
    def check() -> int | None:
        bench.check()
        now = time.time_ns()
        return now if bench.visible(service) == present else None

    return wait_until(check, timeout=30, interval=0.001, what=f"{service} present={present}")


@dataclass
class Burst:
    containers: int
    ms: float
    exact: bool
    detail: str = ""


def burst_start(bench: Bench, count: int, *, already: set[str]) -> tuple[Burst, list[str]]:
    """Start `count` containers at once: last `start` event -> all registered."""
    made = bench.containers.create(count)
    begin = time.time_ns()
    bench.containers.start(made)
    last_start = max(bench.events.wait(made, "start"))
    last_answer = max(bench.answered(bench.service_ids(made), register=True, after_ns=begin))
    expected = already | bench.service_ids(made)
    burst = Burst(count, (last_answer - last_start) / MS, *_exactly(bench, expected))
    return burst, made


def burst_removal(bench: Bench, doomed: list[str], *, staying: set[str]) -> Burst:
    """Remove `doomed` at once: last `die` event -> none of their services left."""
    begin = time.time_ns()
    bench.containers.remove(doomed)
    last_die = max(bench.events.wait(doomed, "die"))
    last_answer = max(bench.answered(bench.service_ids(doomed), register=False, after_ns=begin))
    return Burst(len(doomed), (last_answer - last_die) / MS, *_exactly(bench, staying))


def _exactly(bench: Bench, expected: set[str]) -> tuple[bool, str]:
    actual = bench.bench_services()
    if actual == expected:
        return True, ""
    return False, f"missing {len(expected - actual)}, extra {len(actual - expected)}"


@dataclass
class Resync:
    containers: int
    resyncs: int
    disturbed: int
    requests: list[int]
    writes: list[int]
    inspected: list[int]
    wall_ms: list[float]
    cpu_ms: list[float]
    routes: dict[str, float]


def resync_cost(bench: Bench, registrator: Registrator, *, count: int, containers: int) -> Resync:
    """`count` periodic resyncs with nothing changed: no Docker event since the reconcile before.

    Containers of others on the same engine come and go; a resync that coalesced their events
    is not one with nothing changed, so it is left out (and counted).
    """

    def enough() -> list[dict[str, Any]] | None:
        bench.check()
        found = quiet_resyncs(registrator.records())
        return found[:count] if len(found) >= count else None

    done = wait_until(enough, timeout=60 + count * 10, interval=0.05, what="quiet resyncs")
    reconciles = registrator.records("reconcile.done")
    fulls = [r for r in reconciles if r["scope"] == "full" and r["time"] <= done[-1]["time"]]
    exchanges = bench.proxy.exchanges()
    windows = [_exchanges_during(exchanges, r, reconciles) for r in done]
    routes: dict[str, float] = {}
    for window in windows:
        for e in window:
            key = f"{e.method} {e.route}"
            routes[key] = routes.get(key, 0) + 1 / len(windows)
    return Resync(
        containers=containers,
        resyncs=len(done),
        disturbed=len(fulls) - 1 - len(done),
        requests=[len(w) for w in windows],
        writes=[sum(e.write for e in w) for w in windows],
        inspected=[int(r["inspected"]) for r in done],
        wall_ms=[float(r["seconds"]) * 1000 for r in done],
        cpu_ms=[float(r["cpu_seconds"]) * 1000 for r in done],
        routes=routes,
    )


def _exchanges_during(
    exchanges: list[Exchange], record: dict[str, Any], reconciles: list[dict[str, Any]]
) -> list[Exchange]:
    """The exchanges a reconcile made: those that started within its logged duration.

    Its log line is written just after it ends and the one before it just after that one
    ended, so the window is cut at both: no exchange of a neighbour falls in it.
    """
    end = int(record_time(record) * 1e9)
    begin = end - int(float(record["seconds"]) * 1e9) - 2 * MS
    before = [r for r in reconciles if r["time"] < record["time"]]
    if before:
        begin = max(begin, int(record_time(before[-1]) * 1e9))
    return [e for e in exchanges if begin <= e.started_ns <= end]


@dataclass
class ProxyOverhead:
    direct_ms: float
    proxied_ms: float


def proxy_overhead(bench: Bench, *, samples: int = 200) -> ProxyOverhead:
    """Median time of a small GET to the agent, directly and through the proxy."""

    def median_ms(address: str) -> float:
        connection = http.client.HTTPConnection(address, timeout=10)
        times = []
        for _ in range(samples):
            begin = time.perf_counter()
            connection.request("GET", "/v1/status/leader")
            connection.getresponse().read()
            times.append((time.perf_counter() - begin) * 1000)
        connection.close()
        return percentile(times, 50)

    return ProxyOverhead(median_ms(bench.agent.address), median_ms(bench.proxy.address))
