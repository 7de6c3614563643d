"""Dead hosts in catalog mode, end to end: a real 3-server Consul 1.8.7 cluster with Debian's
nginx-light round-robin in front (harness/fleet.py, with no client agent at all), and three
simulated hosts, each only a registrator process (`Fleet(agentless=True)`: `consul-catalog://`,
a node of its own at an address of its own) talking to nginx through a counting proxy of its
own (benchmarks/proxy.py), which records every request with its body.

A host's registrator killed with SIGKILL is what a host that loses power leaves behind: a
session nobody renews. Short TTLs keep the test short: `--session-ttl 10` (Consul's minimum;
it invalidates a session between one and two TTLs after its last renewal) and
`--reap-after 20` (long enough for a killed registrator to start again before it).
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from benchmarks.proxy import CountingProxy, Exchange
from harness import wait_until
from harness.fleet import Fleet, HostRegistrator, http_get
from registrator.registries.catalog.liveness import ALIVE_CHECK
from tests.integration.support import Containers

HOSTS = 3
SESSION_TTL = 10
REAP_AFTER = 20
#: a session runs out between one and two TTLs after its last renewal, then a watch wakes
DEAD_WITHIN = 2 * SESSION_TTL + 20
pytestmark = pytest.mark.timeout(400)


@dataclass
class Host:
    """A simulated host: its registrator and the proxy all its requests go through."""

    name: str
    registrator: HostRegistrator
    proxy: CountingProxy

    def kill(self) -> None:
        process = self.registrator.process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()

    def started_again(self) -> int:
        """Start the same registrator again; the proxy's mark from just before."""
        mark = self.proxy.mark()
        self.registrator.start()
        return mark


@dataclass
class Agentless:
    fleet: Fleet
    hosts: list[Host]

    def get(self, path: str) -> Any:
        return http_get(self.fleet.nginx.http, path)


@pytest.fixture(scope="module")
def agentless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agentless]:
    workdir = tmp_path_factory.mktemp("catalog-reap")
    short = ("--session-ttl", str(SESSION_TTL), "--reap-after", str(REAP_AFTER))
    fleet = Fleet(workdir, hosts=HOSTS, agentless=True, registrator_args=short)
    hosts: list[Host] = []
    try:
        fleet.start(registrators=False)
        for k in fleet.hosts:
            registrator = fleet.registrator(k)
            proxy = CountingProxy(fleet.nginx.http, timeout=400).start()  # outlasts a watch
            registrator.args[0] = f"consul-catalog://{proxy.address}"  # nginx, through it
            hosts.append(Host(registrator.host, registrator, proxy))
        for host in hosts:
            host.registrator.start()
        yield Agentless(fleet, hosts)
    finally:
        for host in hosts:
            host.registrator.stop()
            host.proxy.stop()
            print(f"--- {host.name} ---\n{host.registrator.log[-6000:]}")
        fleet.stop()


def instances(agentless: Agentless, service: str, *, passing: bool) -> set[str]:
    """The nodes `service` has instances on (only passing ones, with `passing`)."""
    path = f"/v1/health/service/{service}" + ("?passing" if passing else "")
    return {entry["Node"]["Node"] for entry in agentless.get(path) or []}


def alive(agentless: Agentless, node: str) -> str:
    """The node's liveness check's status ("" when it has none, or no node)."""
    checks = agentless.get(f"/v1/health/node/{node}") or []
    return next((c["Status"] for c in checks if c["CheckID"] == ALIVE_CHECK), "")


def node_exists(agentless: Agentless, node: str) -> bool:
    return agentless.get(f"/v1/catalog/node/{node}") is not None


def node_deregistrations(hosts: list[Host], marks: list[int], node: str) -> list[Exchange]:
    """Every `PUT /v1/catalog/deregister` of the whole node, at every host's proxy."""
    return [
        e
        for host, mark in zip(hosts, marks, strict=True)
        for e in host.proxy.exchanges(since=mark)
        if e.method == "PUT"
        and e.path == "/v1/catalog/deregister"
        and json.loads(e.body) == {"Node": node}
    ]


def service_writes(exchanges: list[Exchange]) -> list[Any]:
    """Service registrations and removals in these requests: txn operations and direct ones."""
    found: list[Any] = []
    for e in exchanges:
        if e.method != "PUT" or not e.body:
            continue
        body = json.loads(e.body)
        if e.path == "/v1/txn":
            found += [op for op in body if "Service" in op]
        elif e.path in {"/v1/catalog/register", "/v1/catalog/deregister"} and (
            "Service" in body or "ServiceID" in body
        ):
            found.append(body)
    return found


@pytest.fixture
def service(agentless: Agentless, containers: Containers) -> str:
    """One container per host under a service name of this test's own, all passing."""
    name = f"svc-{uuid.uuid4().hex[:8]}"
    for k in agentless.fleet.hosts:
        labels = agentless.fleet.labels(k)
        containers.run(env={"SERVICE_NAME": name}, labels=labels, ports={80: 0})
    everyone = {h.name for h in agentless.hosts}
    wait_until(lambda: instances(agentless, name, passing=True) == everyone, timeout=60)
    wait_until(lambda: all(alive(agentless, n) == "passing" for n in everyone), timeout=60)
    return name


def test_a_killed_host_goes_critical_then_is_reaped_once(
    agentless: Agentless, service: str
) -> None:
    """SIGKILL: critical within the session's TTL (its service out of `?passing`), its node
    gone after --reap-after, deregistered by exactly one of the others."""
    hosts = agentless.hosts
    dead = hosts[1]
    marks = [h.proxy.mark() for h in hosts]
    dead.kill()

    wait_until(lambda: alive(agentless, dead.name) == "critical", timeout=DEAD_WITHIN)
    assert instances(agentless, service, passing=True) == {"host-1", "host-3"}
    assert dead.name in instances(agentless, service, passing=False)  # marked, not yet removed

    wait_until(lambda: not node_exists(agentless, dead.name), timeout=REAP_AFTER + 30)
    assert dead.name not in instances(agentless, service, passing=False)
    assert len(node_deregistrations(hosts, marks, dead.name)) == 1
    assert instances(agentless, service, passing=True) == {"host-1", "host-3"}
    lost = [r for h in hosts for r in h.registrator.records("catalog.reap_lost")]

    def reaped() -> list[str]:  # logged once the reaper has deleted the node's keys too
        return [r["node"] for h in hosts for r in h.registrator.records("catalog.node_reaped")]

    wait_until(reaped, timeout=15, what="catalog.node_reaped")
    assert reaped() == [dead.name]
    assert all(r["node"] == dead.name for r in lost)

    dead.started_again()  # back after the reap: it registers its node and service again
    wait_until(lambda: dead.name in instances(agentless, service, passing=True), timeout=60)


def test_a_host_back_before_the_reap_is_adopted_without_service_writes(
    agentless: Agentless, service: str
) -> None:
    """Killed, marked critical, started again within --reap-after: its service passes again
    and nothing of it is written: one check write (its liveness check back to passing)."""
    hosts = agentless.hosts
    back = hosts[2]
    marks = [h.proxy.mark() for h in hosts]
    back.kill()
    wait_until(lambda: alive(agentless, back.name) == "critical", timeout=DEAD_WITHIN)
    assert back.name not in instances(agentless, service, passing=True)

    since = back.started_again()
    wait_until(lambda: back.name in instances(agentless, service, passing=True), timeout=60)
    wait_until(
        lambda: f"registrator/catalog/reap/{back.name}" not in claims_now(agentless),
        timeout=30,
        what="the claim on it dropped",
    )
    restarted = back.proxy.exchanges(since=since)
    assert service_writes(restarted) == []
    checks = [
        op["Check"]["Check"]
        for e in restarted
        if e.method == "PUT" and e.path == "/v1/txn"
        for op in json.loads(e.body)
        if "Check" in op
    ]
    assert [(c["CheckID"], c["Status"]) for c in checks] == [(ALIVE_CHECK, "passing")]
    assert node_deregistrations(hosts, marks, back.name) == []
    assert node_exists(agentless, back.name)
    lock = agentless.get(f"/v1/kv/registrator/catalog/nodes/{back.name}")
    assert lock[0].get("Session")


def claims_now(agentless: Agentless) -> list[str]:
    try:
        return list(agentless.get("/v1/kv/registrator/catalog/reap/?keys") or [])
    except OSError:  # 404: no claim at all
        return []


def locks_released(agentless: Agentless, nodes: set[str]) -> bool:
    """Every one of these nodes' locks is held by no session (their sessions ran out)."""
    keys = agentless.get("/v1/kv/registrator/catalog/nodes/?recurse") or []
    held = {k["Key"].rsplit("/", 1)[-1] for k in keys if k.get("Session")}
    return not held & nodes


def test_when_the_whole_fleet_died_the_first_one_back_reaps_the_others(
    agentless: Agentless, service: str
) -> None:
    """Nobody left to watch: every node stays as it was (passing) however long it lasts. The
    first registrator back marks the others dead at once and reaps them --reap-after later."""
    hosts = agentless.hosts
    everyone = {h.name for h in hosts}
    marks = [h.proxy.mark() for h in hosts]
    for host in hosts:
        host.kill()
    wait_until(lambda: locks_released(agentless, everyone), timeout=DEAD_WITHIN)
    assert instances(agentless, service, passing=True) == everyone  # nobody marked them
    assert {alive(agentless, n) for n in everyone} == {"passing"}

    first = hosts[0]
    first.started_again()
    others = everyone - {first.name}
    wait_until(lambda: {alive(agentless, n) for n in others} == {"critical"}, timeout=60)
    assert instances(agentless, service, passing=True) == {first.name}
    wait_until(lambda: not any(node_exists(agentless, n) for n in others), timeout=REAP_AFTER + 60)
    assert all(len(node_deregistrations(hosts, marks, n)) == 1 for n in others)
    assert node_exists(agentless, first.name)

    for host in hosts[1:]:  # the module's fleet as it was: every host back
        host.started_again()
    wait_until(lambda: instances(agentless, service, passing=True) == everyone, timeout=60)
