"""A fleet on a real Consul cluster: 3 servers, 3 hosts with a client agent and a registrator
each, nginx in front of the servers (harness/fleet.py), and the failures a fleet lives with.

One cluster serves the whole module; each test puts its own containers on the hosts under a
service name of its own, and leaves the cluster as it found it (its services gone from every
server, every agent and registrator running).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.rdatatype
import dns.resolver
import pytest
import yaml

from harness import PrometheusServer, wait_until
from harness.fleet import FLEET_LABEL, ConsulNode, Fleet, HostRegistrator, http_put
from tests.integration.support import Containers

HOSTS = 3
#: a cluster's failure detection and elections take seconds, and more on a loaded machine
pytestmark = pytest.mark.timeout(300)
#: (node, address, port) of each service ID, as the catalog holds it
Catalog = dict[str, tuple[str, str, int]]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("fleet")
    # Agents compare their services with the catalog every 5 s instead of every 1-2 min: a
    # change an agent could not pass on while the cluster had no leader waits for that.
    cluster = Fleet(
        workdir,
        hosts=HOSTS,
        registrator_args=("--agent-check-interval", "1"),
        anti_entropy="5s",
    )
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        for registrator in cluster.registrators:  # shown when a test of the module failed
            print(f"--- {registrator.host} ---\n{registrator.log[-5000:]}")


@dataclass
class OnHosts:
    """This test's containers on the fleet's hosts, all under one service name."""

    fleet: Fleet
    containers: Containers
    name: str = field(default_factory=lambda: f"svc-{uuid.uuid4().hex[:8]}")
    running: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (host, name)

    def run(self, host: int, **env: str) -> str:
        name = f"fl-{uuid.uuid4().hex[:10]}"
        env = {"SERVICE_NAME": self.name, **env}
        labels = self.fleet.labels(host)
        container = self.containers.run(env=env, labels=labels, ports={80: 0}, name=name)
        self.running[container] = (host, name)
        return container

    def remove(self, container: str) -> None:
        self.containers.api.remove_container(container, force=True)
        del self.running[container]

    def on(self, host: int) -> list[str]:
        return [c for c, (k, _) in self.running.items() if k == host]

    def expected(self) -> Catalog:
        return {
            f"host-{k}:{name}:80": (f"host-{k}", self.fleet.host_address(k), self.port(c))
            for c, (k, name) in self.running.items()
        }

    def port(self, container: str) -> int:
        return self.containers.host_port(container)


def catalog_of(fleet: Fleet, server: ConsulNode, name: str) -> Catalog | None:
    """What `server` holds of `name`; None when an instance is listed twice."""
    entries = fleet.catalog(server, name)
    found = {e["ServiceID"]: (e["Node"], e["ServiceAddress"], e["ServicePort"]) for e in entries}
    return found if len(found) == len(entries) else None


def everywhere(fleet: Fleet, name: str, expected: Catalog) -> bool:
    """Every live server's own copy of the catalog holds exactly `expected`, once each."""
    return all(catalog_of(fleet, s, name) == expected for s in fleet.servers if s.alive)


def passing_ids(fleet: Fleet, name: str) -> set[str]:
    return {e["Service"]["ID"] for e in fleet.passing(fleet.live_server(), name)}


@pytest.fixture
def on_hosts(fleet: Fleet, containers: Containers) -> Iterator[OnHosts]:
    placed = OnHosts(fleet, containers)
    yield placed
    containers.remove_all()
    wait_until(lambda: everywhere(fleet, placed.name, {}), timeout=30, what="services removed")


def converge(fleet: Fleet, on_hosts: OnHosts, *, timeout: float = 30) -> Catalog:
    expected = on_hosts.expected()
    wait_until(
        lambda: everywhere(fleet, on_hosts.name, expected),
        timeout=timeout,
        what=f"{sorted(expected)} in every server's catalog",
    )
    return expected


def test_every_hosts_containers_reach_every_server_dns_and_prometheus_through_nginx(
    fleet: Fleet, on_hosts: OnHosts, tmp_path: Path
) -> None:
    for k in fleet.hosts:
        for _ in range(2):
            on_hosts.run(k, SERVICE_TAGS="prometheus", SERVICE_TEAM=f"team-{k}")

    expected = converge(fleet, on_hosts)

    assert srv_answer(fleet.servers[-1], on_hosts.name) == {
        (address, port) for _, address, port in expected.values()
    }
    targets = discovered(fleet, on_hosts.name, len(expected), tmp_path)
    assert {t["labels"]["instance"]: t["labels"] for t in targets} == {
        f"{address}:{port}": {
            "instance": f"{address}:{port}",
            "job": "fleet",
            "service": on_hosts.name,
            "node": node,
            "registrator_host": node,
            "team": f"team-{node.removeprefix('host-')}",
        }
        for node, address, port in expected.values()
    }


def srv_answer(server: ConsulNode, name: str) -> set[tuple[str, int]]:
    """(address, port) of each SRV record, the address from the answer's A records."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.dns[0]]
    resolver.port = server.dns[1]
    resolver.lifetime = 5
    answer = resolver.resolve(f"{name}.service.consul", "SRV", tcp=True)  # UDP: 3 at most
    addresses = {
        rrset.name.to_text(): item.address
        for rrset in answer.response.additional
        if rrset.rdtype == dns.rdatatype.A
        for item in rrset
    }
    return {(addresses[r.target.to_text()], r.port) for r in answer}


def prometheus_config(fleet: Fleet, name: str) -> str:
    """Prometheus asking the servers through nginx, as a fleet's readers do; Meta as labels."""
    job = {
        "job_name": "fleet",
        "consul_sd_configs": [
            {"server": fleet.nginx.http, "services": [name], "refresh_interval": "1s"}
        ],
        "relabel_configs": [
            {"regex": "__meta_consul_service_metadata_(.+)", "action": "labelmap"},
            {"source_labels": ["__meta_consul_service"], "target_label": "service"},
            {"source_labels": ["__meta_consul_node"], "target_label": "node"},
        ],
    }
    return yaml.safe_dump({"scrape_configs": [job]})


def discovered(fleet: Fleet, name: str, count: int, workdir: Path) -> list[dict[str, Any]]:
    """The `count` targets of `name` a Prometheus of its own finds through nginx."""
    prometheus = PrometheusServer(workdir / "prometheus", prometheus_config(fleet, name))
    try:
        prometheus.start()
        return wait_until(lambda: targets_of(prometheus, name, count), timeout=45)
    finally:
        prometheus.stop()


def targets_of(prometheus: PrometheusServer, name: str, count: int) -> list[dict[str, Any]]:
    active = prometheus.targets()["activeTargets"]
    found = [t for t in active if t["labels"].get("service") == name]
    return found if len(found) == count else []


def test_a_host_whose_agent_dies_and_comes_back_empty_is_restored_by_its_registrator_only(
    fleet: Fleet, on_hosts: OnHosts
) -> None:
    for k in fleet.hosts:
        for _ in range(2):
            on_hosts.run(k)
    expected = converge(fleet, on_hosts)
    writes = {k: fleet.registrator(k).writes() for k in fleet.hosts}

    fleet.client(2).kill()
    host_2 = {sid for sid in expected if sid.startswith("host-2:")}
    wait_until(
        lambda: passing_ids(fleet, on_hosts.name) == set(expected) - host_2,
        timeout=30,
        what="host-2's services failing with its node",
    )
    fleet.client(2).start(empty=True)
    # the agent came back without them: only host-2's registrator can have put them back
    wait_until(
        lambda: host_2 <= set(fleet.client(2).services()),
        timeout=60,
        what="host-2's agent holding its services again",
    )
    wait_until(
        lambda: (
            passing_ids(fleet, on_hosts.name) == set(expected)
            and everywhere(fleet, on_hosts.name, expected)
        ),
        timeout=60,
        what="host-2 whole again",
    )

    assert fleet.registrator(2).writes() >= writes[2] + len(host_2)
    assert {k: fleet.registrator(k).writes() for k in (1, 3)} == {1: writes[1], 3: writes[3]}
    assert all(r.alive for r in fleet.registrators)


def test_losing_the_leader_during_churn_loses_nothing_and_leaves_nothing_stale(
    fleet: Fleet, on_hosts: OnHosts
) -> None:
    for k in fleet.hosts:
        for _ in range(2):
            on_hosts.run(k)
    converge(fleet, on_hosts)
    failures = [len(r.records("reconcile.failed")) for r in fleet.registrators]

    def no_failures() -> None:
        # their own agents took every write: the cluster's trouble was never theirs
        assert [len(r.records("reconcile.failed")) for r in fleet.registrators] == failures

    churn_without_the_leader(fleet, on_hosts, then=no_failures)


def churn_without_the_leader(
    fleet: Fleet, on_hosts: OnHosts, *, then: Callable[[], None] = lambda: None
) -> None:
    """Kill the leader, start and remove containers on several hosts meanwhile: every live
    server then holds exactly the running ones (`then` checks more), and so does the old
    leader once back as a follower."""
    old = wait_until(fleet.leader, what="a leader")
    old.kill()
    try:
        on_hosts.run(1)
        on_hosts.remove(on_hosts.on(1)[0])
        on_hosts.run(2)
        on_hosts.remove(on_hosts.on(3)[0])
        on_hosts.run(3)
        new = wait_until(fleet.leader, timeout=30, what="a new leader")
        assert new is not old
        converge(fleet, on_hosts, timeout=90)
        assert all(r.alive for r in fleet.registrators)
        then()
        old.start()
        fleet.wait_for_cluster()
        converge(fleet, on_hosts)  # the old leader, back as a follower, holds the same
    finally:
        if not old.alive:
            old.start()
            fleet.wait_for_cluster()


def test_restarting_every_registrator_at_once_writes_nothing_and_duplicates_nothing(
    fleet: Fleet, on_hosts: OnHosts
) -> None:
    for k in fleet.hosts:
        for _ in range(2):
            on_hosts.run(k)
    expected = converge(fleet, on_hosts)
    writes = [r.writes() for r in fleet.registrators]
    passes = [len(full_passes(r)) for r in fleet.registrators]
    catalog_writes = fleet.catalog_writes()

    with ThreadPoolExecutor(len(fleet.registrators)) as pool:
        assert list(pool.map(HostRegistrator.stop, fleet.registrators)) == [0] * HOSTS
    fleet.start_registrators()

    def started() -> bool:
        return all(len(full_passes(r)) > n for r, n in zip(fleet.registrators, passes, strict=True))

    wait_until(started, timeout=60, what="every registrator's start-up reconcile")

    assert [r.writes() for r in fleet.registrators] == writes
    assert everywhere(fleet, on_hosts.name, expected)
    assert fleet.catalog_writes() == catalog_writes


def full_passes(registrator: HostRegistrator) -> list[dict[str, Any]]:
    return [r for r in registrator.records("reconcile.done") if r.get("scope") == "full"]


@pytest.fixture
def through_nginx(fleet: Fleet, tmp_path: Path) -> Iterator[HostRegistrator]:
    """A registrator pointed at the load balancer instead of its host's agent."""
    label = f"{FLEET_LABEL}={fleet.run}.host-lb"
    args = [f"consul://{fleet.nginx.http}", "--hostname", "host-lb", "--require-label", label]
    args += ["--log-format", "json", "--log-level", "DEBUG", "--agent-check-interval", "0.3"]
    log = tmp_path / "registrator-lb.log"
    registrator = HostRegistrator(args, log, {"PYTHONUNBUFFERED": "1"}, host="host-lb").start()
    yield registrator
    registrator.stop()
    print(f"--- host-lb ---\n{registrator.log[-5000:]}")
    for server in fleet.servers:  # what it registered stays on the servers' agents
        for service_id in server.services():
            if service_id.startswith("host-lb:"):
                http_put(server.http, f"/v1/agent/service/deregister/{service_id}")


def test_a_registrator_behind_a_load_balancer_notices_and_stops_deregistering(
    fleet: Fleet, containers: Containers, through_nginx: HostRegistrator
) -> None:
    labels = {FLEET_LABEL: f"{fleet.run}.host-lb"}
    web = containers.run(labels=labels, ports={80: 0}, name=f"fl-{uuid.uuid4().hex[:10]}")
    service_id = f"host-lb:{containers.name(web)}:80"
    wait_until(lambda: holders(fleet, service_id), what=f"{service_id} on a server's agent")

    [first, *_] = wait_until(
        lambda: through_nginx.records("registry.agent_changed"), timeout=30, what="the error"
    )
    assert first["first"] != first["now"]
    assert {first["first"], first["now"]} <= {s.name for s in fleet.servers}
    assert "local Consul agent" in first["hint"]

    containers.api.remove_container(web, force=True)
    passes = len(through_nginx.records("reconcile.done"))
    wait_until(lambda: len(through_nginx.records("reconcile.done")) > passes + 10, timeout=30)

    assert through_nginx.records("service.deregistered") == []
    assert holders(fleet, service_id)  # left registered: never removed on another node's list
    errors = through_nginx.records("registry.agent_changed")
    assert len(errors) == len({e["now"] for e in errors}) <= len(fleet.servers) - 1
    assert through_nginx.alive


def holders(fleet: Fleet, service_id: str) -> list[str]:
    """The servers whose own agent holds `service_id` (registered through that agent)."""
    return [s.name for s in fleet.servers if service_id in s.services()]
