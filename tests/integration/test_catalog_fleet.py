"""Catalog mode in a fleet: 3 Consul servers behind nginx, and 3 hosts with NO client agent,
each with its own registrator writing the catalog through nginx (`consul-catalog://`).

The deployment of the project's reference material, made correct: every service lands under
its own host's node whichever server nginx picked, every server holds the same, Consul DNS
and Prometheus see only what passes, and registrator's own probes decide what passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.resolver
import pytest

from harness import wait_until
from harness.fleet import Fleet, HostRegistrator
from registrator.registries.catalog.node import NODE_META_EXTERNAL, NODE_META_HOST
from tests.integration.test_drain import GRACEFUL, running, stopping
from tests.integration.test_fleet import (
    OnHosts,
    churn_without_the_leader,
    converge,
    discovered,
    on_hosts,
    passing_ids,
    srv_answer,
)

__all__ = ["on_hosts"]  # test_fleet's fixture, on this module's fleet
HOSTS = 3
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("catalog-fleet")
    cluster = Fleet(
        workdir, hosts=HOSTS, agentless=True, registrator_args=("--agent-check-interval", "1")
    )
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        for registrator in cluster.registrators:  # shown when a test of the module failed
            print(f"--- {registrator.host} ---\n{registrator.log[-5000:]}")


def srv_or_none(fleet: Fleet, server: int, name: str) -> set[tuple[str, int]]:
    try:
        return srv_answer(fleet.servers[server], name)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return set()


def test_every_hosts_containers_are_under_its_own_node_on_every_server_dns_and_prometheus(
    fleet: Fleet, on_hosts: OnHosts, tmp_path: Path
) -> None:
    for k in fleet.hosts:
        for _ in range(2):
            on_hosts.run(k, SERVICE_TAGS="prometheus", SERVICE_TEAM=f"team-{k}")

    expected = converge(fleet, on_hosts)

    for k in fleet.hosts:
        node = fleet.live_server().get(f"/v1/catalog/node/host-{k}")["Node"]
        assert node["Address"] == fleet.host_address(k)
        assert node["Meta"][NODE_META_EXTERNAL] == "true"
        assert node["Meta"][NODE_META_HOST] == f"host-{k}"
    answers = {(address, port) for _, address, port in expected.values()}
    for server in range(len(fleet.servers)):
        assert srv_or_none(fleet, server, on_hosts.name) == answers
    targets = discovered(fleet, on_hosts.name, len(expected), tmp_path)
    assert {t["labels"]["instance"]: t["labels"]["node"] for t in targets} == {
        f"{address}:{port}": node for node, address, port in expected.values()
    }
    assert not any(r.records("registry.agent_changed") for r in fleet.registrators)


def test_a_failing_http_check_leaves_dns_and_a_fixed_one_comes_back(
    fleet: Fleet, on_hosts: OnHosts
) -> None:
    checked = {
        "SERVICE_CHECK_HTTP": "/index.html",
        "SERVICE_CHECK_INTERVAL": "1s",
        "SERVICE_CHECK_FAILURES_BEFORE_CRITICAL": "2",
    }
    web = on_hosts.run(2, **checked)
    other = on_hosts.run(3, **checked)
    expected = converge(fleet, on_hosts)
    everyone = {(address, port) for _, address, port in expected.values()}
    wait_until(lambda: srv_or_none(fleet, 0, on_hosts.name) == everyone, timeout=30)
    mine = {(fleet.host_address(2), on_hosts.port(web))}

    on_hosts.containers.exec(web, "mv", "/www/index.html", "/www/away.html")
    # interval x failures_before_critical is 2 s; the deadline allows for a loaded machine
    wait_until(
        lambda: all(srv_or_none(fleet, s, on_hosts.name) == everyone - mine for s in range(3)),
        timeout=30,
        what="the failing instance out of every server's DNS",
    )
    assert len(passing_ids(fleet, on_hosts.name)) == 1
    on_hosts.containers.exec(web, "mv", "/www/away.html", "/www/index.html")
    wait_until(
        lambda: all(srv_or_none(fleet, s, on_hosts.name) == everyone for s in range(3)),
        timeout=30,
        what="the fixed instance back in every server's DNS",
    )
    assert other in on_hosts.running


def test_losing_the_leader_during_churn_loses_nothing_and_duplicates_nothing(
    fleet: Fleet, on_hosts: OnHosts
) -> None:
    for k in fleet.hosts:
        for _ in range(2):
            on_hosts.run(k)
    converge(fleet, on_hosts)

    churn_without_the_leader(fleet, on_hosts)  # the registrators' writes retried through nginx


def test_docker_stop_takes_a_draining_container_out_of_dns_before_it_exits(
    fleet: Fleet, on_hosts: OnHosts
) -> None:
    labels = fleet.labels(1)
    env = {"SERVICE_NAME": on_hosts.name}
    web = on_hosts.containers.run(
        GRACEFUL, env=env, labels=labels, ports={80: 0}, create={"stop_timeout": 10}
    )
    address = (fleet.host_address(1), on_hosts.port(web))
    wait_until(lambda: srv_or_none(fleet, 1, on_hosts.name) == {address}, timeout=30)

    with stopping(on_hosts.containers, web):
        wait_until(
            lambda: srv_or_none(fleet, 1, on_hosts.name) == set(),
            timeout=30,
            what="the draining instance out of DNS",
        )
        assert running(on_hosts.containers, web)


def test_idle_passes_through_nginx_write_nothing(fleet: Fleet, on_hosts: OnHosts) -> None:
    checked = {"SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_INTERVAL": "1s"}
    for k in fleet.hosts:
        on_hosts.run(k, **checked)
    converge(fleet, on_hosts)
    wait_until(lambda: len(passing_ids(fleet, on_hosts.name)) == HOSTS, timeout=30)
    before = [(_writes(r), len(r.records("reconcile.done"))) for r in fleet.registrators]

    def passes_since() -> bool:
        done = [len(r.records("reconcile.done")) for r in fleet.registrators]
        return all(now >= then + 3 for now, (_, then) in zip(done, before, strict=True))

    wait_until(passes_since, timeout=30, what="three more passes on every host")

    assert [_writes(r) for r in fleet.registrators] == [w for w, _ in before]


def _writes(registrator: HostRegistrator) -> int:
    """Services and check statuses written, from its `reconcile.done` lines."""
    checks = sum(int(r.get("checks_updated", 0)) for r in registrator.records("reconcile.done"))
    return registrator.writes() + checks
