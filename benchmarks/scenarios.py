"""The measured scenarios; each returns plain numbers for the report.

Every subject (registrator, or a peer command) talks to its own Consul agent through the
counting proxy, and every figure is timed there: Docker's own event time (`timeNano`) -> the
moment the agent answered the subject's write. The agent applies a write before it answers,
so that is when the service became visible (or stopped being), observed without polling the
agent, which would load the two cores being measured.

Services are matched to containers by the container name in their ID (`HOST:NAME:PORT`, the
layout registrator and gliderlabs share), so a peer may spell its host identity its own way.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import docker

from benchmarks.docker_side import BenchContainers, EventTimes
from benchmarks.proxy import CountingProxy
from benchmarks.stats import percentile
from benchmarks.subjects import SubjectProcess
from harness import ConsulDevAgent, wait_until

MS = 1_000_000  # nanoseconds


def container_name_of(service_id: str) -> str:
    """The container name in a service ID `HOST:NAME:PORT[:udp]` ("" for another layout)."""
    parts = service_id.split(":")
    if len(parts) >= 3 and parts[-1] == "udp":
        parts = parts[:-1]
    return parts[-2] if len(parts) >= 3 else ""


@dataclass
class Bench:
    """Everything a scenario needs: Docker, the agent, the proxy in front of it, the subject."""

    api: docker.APIClient
    agent: ConsulDevAgent
    proxy: CountingProxy
    containers: BenchContainers
    events: EventTimes
    #: the subject's process running now, if any
    process: SubjectProcess | None = None

    def check(self) -> None:
        """Raise `Interrupted` when dockerd restarted or the subject exited under the run."""
        self.events.check()
        if self.process is not None:
            self.process.check_alive()

    def name(self, container: str) -> str:
        return self.containers.names[container]

    def names(self, containers: Iterable[str]) -> set[str]:
        return {self.name(c) for c in containers}

    def registered(self) -> set[str]:
        """This run's containers with a service in the agent, read from the agent directly."""
        pattern = re.compile(rf"bench-{self.containers.run}-\d+")
        found = (container_name_of(s) for s in self.agent.services())
        return {name for name in found if pattern.fullmatch(name)}

    def answered(self, containers: Iterable[str], *, register: bool, after_ns: int) -> list[int]:
        """When the agent acknowledged each container's (de)registration, waiting for all."""
        wanted = [self.name(c) for c in containers]

        def all_answered() -> list[int] | None:
            self.check()
            times = [self.proxy.answered(n, register=register, after_ns=after_ns) for n in wanted]
            return None if None in times else [t for t in times if t is not None]

        return wait_until(all_answered, timeout=180, interval=0.002, what="agent answers")


@dataclass
class StartUp:
    containers: int
    seconds: float


def start_up(bench: Bench, process: SubjectProcess, *, running: list[str]) -> StartUp:
    """Process start -> the agent answered the registration of every running container."""
    bench.process = process.start()
    last = max(bench.answered(running, register=True, after_ns=process.started_ns))
    return StartUp(len(running), (last - process.started_ns) / 1e9)


@dataclass
class Sequential:
    register_ms: list[float] = field(default_factory=list)
    deregister_ms: list[float] = field(default_factory=list)
    #: (container name, start or die, Docker's event time, the agent's answer) in ns
    samples: list[tuple[str, str, int, int]] = field(default_factory=list)


def sequential(bench: Bench, count: int) -> Sequential:
    """Start one container, wait until registered; kill it, wait until gone; `count` times."""
    result = Sequential()
    for _ in range(count):
        (container,) = bench.containers.create(1)
        started = _one(bench, container, "start", bench.containers.start_one)
        died = _one(bench, container, "die", bench.containers.kill)
        result.register_ms.append((started[3] - started[2]) / MS)
        result.deregister_ms.append((died[3] - died[2]) / MS)
        result.samples += [started, died]
        bench.containers.remove([container])
    return result


def _one(
    bench: Bench, container: str, action: str, call: Callable[[str], object]
) -> tuple[str, str, int, int]:
    begin = time.time_ns()
    call(container)
    (event,) = bench.events.wait([container], action)
    (answer,) = bench.answered([container], register=action == "start", after_ns=begin)
    return bench.name(container), action, event, answer


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
    last_answer = max(bench.answered(made, register=True, after_ns=begin))
    burst = Burst(count, (last_answer - last_start) / MS, *exactly(bench, already | set(made)))
    return burst, made


def burst_removal(bench: Bench, doomed: list[str], *, staying: set[str]) -> Burst:
    """Remove `doomed` at once: last `die` event -> none of their services left."""
    begin = time.time_ns()
    bench.containers.remove(doomed)
    last_die = max(bench.events.wait(doomed, "die"))
    last_answer = max(bench.answered(doomed, register=False, after_ns=begin))
    return Burst(len(doomed), (last_answer - last_die) / MS, *exactly(bench, staying))


def exactly(bench: Bench, running: set[str]) -> tuple[bool, str]:
    """Whether the agent holds services of exactly the `running` containers, and if not, why."""
    expected, actual = bench.names(running), bench.registered()
    if actual == expected:
        return True, ""
    return False, f"missing {len(expected - actual)}, extra {len(actual - expected)}"


@dataclass
class Idle:
    """Nothing changes for `seconds`: what the subject sends the agent, per resync interval."""

    seconds: float
    interval: float
    requests: int
    writes: int
    routes: dict[str, int]

    @property
    def per_interval(self) -> float:
        return self.interval / self.seconds

    @property
    def requests_per_interval(self) -> float:
        return self.requests * self.per_interval

    @property
    def writes_per_interval(self) -> float:
        return self.writes * self.per_interval


def idle(bench: Bench, *, intervals: int, interval: float) -> Idle:
    """Watch the proxy for `intervals` resync intervals with no container of the run changing.

    Writes naming other people's containers on the same engine (they come and go) are left
    out: registering them is no idle cost. Reads are all counted.
    """
    mine = re.compile(rf"bench-{bench.containers.run}-\d+")
    mark, begin = bench.proxy.mark(), time.monotonic()
    deadline = begin + intervals * interval
    while time.monotonic() < deadline:
        bench.check()
        time.sleep(0.05)
    seconds = time.monotonic() - begin
    counted = [
        e
        for e in bench.proxy.exchanges(since=mark)
        if not e.write or mine.fullmatch(container_name_of(e.service))
    ]
    routes: dict[str, int] = {}
    for e in counted:
        routes[f"{e.method} {e.route}"] = routes.get(f"{e.method} {e.route}", 0) + 1
    return Idle(seconds, interval, len(counted), sum(e.write for e in counted), routes)


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
