"""A registrator that sees another registry node than the first stops deregistering, says so
once per node, and goes on registering (the load-balancer misconfiguration)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from registrator.core.errors import RegistryDenied
from registrator.core.model import ContainerID, ServiceID
from registrator.core.policy import Policy
from registrator.runtime import startup
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.work import Changes, FullPass
from tests.support import web
from tests.unit.fakes import FakeConsul, FakeDocker

AGENT_CHECK = FullPass.AGENT_CHECK


@pytest.fixture
def errors() -> Iterator[list[dict[str, Any]]]:
    """The `registry.agent_changed` lines logged, as their fields."""
    found: list[dict[str, Any]] = []
    sink = logger.add(
        lambda m: found.append(dict(m.record["extra"])),
        filter=lambda r: r["message"] == "registry.agent_changed",
    )
    yield found
    logger.remove(sink)


@pytest.fixture
def docker() -> FakeDocker:
    docker = FakeDocker()
    docker.add(web("c1", "a"))
    docker.add(web("c2", "b"))
    return docker


def reconciler_for(docker: FakeDocker, consul: FakeConsul) -> Reconciler:
    return startup.reconciler_for(docker, consul, Policy("h"), retry=RetryPolicy.without_waits())


def test_one_node_throughout_deregisters_as_usual(
    docker: FakeDocker, errors: list[dict[str, Any]]
) -> None:
    consul = FakeConsul()
    reconciler = reconciler_for(docker, consul)
    reconciler.full()
    del docker.containers_by_id[ContainerID("c1")]

    outcome = reconciler.full(FullPass.RESYNC)

    assert outcome.deregistered == 1
    assert list(consul.registered) == ["h:b:80"]
    assert errors == []


def test_another_node_answering_stops_deregistrations_and_is_reported_once(
    docker: FakeDocker, errors: list[dict[str, Any]]
) -> None:
    consul = FakeConsul(node_name="server-1")
    reconciler = reconciler_for(docker, consul)
    reconciler.full()
    consul.node_name = "server-2"  # a load balancer sent this pass elsewhere
    del docker.containers_by_id[ContainerID("c1")]

    outcomes = [reconciler.full(FullPass.RESYNC) for _ in range(3)]
    consul.node_name = "server-1"
    outcomes.append(reconciler.full(AGENT_CHECK))

    assert [o.deregistered for o in outcomes] == [0, 0, 0, 0]
    assert ServiceID("h:a:80") in consul.registered
    assert [(e["first"], e["now"]) for e in errors] == [("server-1", "server-2")]
    assert "local" in errors[0]["hint"]
    assert "consul-catalog://" in errors[0]["hint"]  # the fix for a host without an agent


def test_each_new_node_is_reported_once_and_registrations_go_on(
    docker: FakeDocker, errors: list[dict[str, Any]]
) -> None:
    consul = FakeConsul(node_name="server-1")
    reconciler = reconciler_for(docker, consul)
    reconciler.full()
    for node in ("server-2", "server-3", "server-2", "server-1", "server-3"):
        consul.node_name = node
        reconciler.full(AGENT_CHECK)
    docker.add(web("c3", "c"))
    consul.registered.clear()  # the node now answering holds nothing of ours

    outcome = reconciler.full(FullPass.RESYNC)

    assert [e["now"] for e in errors] == ["server-2", "server-3"]
    assert outcome.registered == 3


def test_the_event_path_and_release_deregister_nothing_once_the_node_changed(
    docker: FakeDocker,
) -> None:
    consul = FakeConsul(node_name="server-1")
    reconciler = reconciler_for(docker, consul)
    reconciler.full()
    consul.node_name = "server-2"
    reconciler.full(AGENT_CHECK)
    docker.add(dataclasses.replace(web("c1", "a"), running=False, status="exited"))

    died = {ContainerID("c1"): 0}
    assert reconciler.changes(Changes(frozenset(died), died)).deregistered == 0
    assert reconciler.release().deregistered == 0
    assert set(consul.registered) == {"h:a:80", "h:b:80"}


class NodelessConsul(FakeConsul):
    def node(self) -> str:
        return ""


class NodeDenied(FakeConsul):
    def node(self) -> str:
        raise RegistryDenied("GET /v1/agent/self: 403 Permission denied")


@pytest.mark.parametrize("consul", [NodelessConsul(), NodeDenied()], ids=["no nodes", "denied"])
def test_a_registry_that_names_no_node_keeps_its_cleanup(
    docker: FakeDocker, consul: FakeConsul, errors: list[dict[str, Any]]
) -> None:
    reconciler = reconciler_for(docker, consul)
    reconciler.full()
    del docker.containers_by_id[ContainerID("c1")]

    assert reconciler.full(FullPass.RESYNC).deregistered == 1
    assert errors == []


class RoundRobin(FakeConsul):
    """A balancer over several agents holding the same services: each call goes to the next."""

    def __init__(self, *nodes: str) -> None:
        super().__init__()
        self.nodes = nodes
        self.calls = 0

    def node(self) -> str:
        self.calls += 1
        return self.nodes[self.calls % len(self.nodes)]


def test_a_round_robin_balancer_is_noticed_in_the_first_pass_before_any_cleanup(
    docker: FakeDocker, errors: list[dict[str, Any]]
) -> None:
    consul = RoundRobin("server-1", "server-2")
    reconciler = reconciler_for(docker, consul)
    docker.add(web("c9", "gone"))
    reconciler.full()  # an earlier run registered gone's service
    del docker.containers_by_id[ContainerID("c9")]
    fresh = reconciler_for(docker, consul)  # a new process, through the same balancer

    outcome = fresh.full()

    assert outcome.deregistered == 0
    assert ServiceID("h:gone:80") in consul.registered
    assert len(errors) == 2  # once by each process
