"""The unit tests' fake registry held to the real Consul agent and to the catalog registry
(`consul-catalog://`): one set of assertions, run against all three, so neither the fake nor
catalog mode can drift from what the agent does with re-registration,
maintenance mode, TTL status, ownership and refused writes. The fake Docker source is held to
the real engine adapter the same way."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest

from harness import ConsulDevAgent
from registrator.core.errors import RegistryError, RegistryRefused
from registrator.core.model import OWNER_META_KEY, Check, ContainerID, Service, ServiceID
from registrator.core.ports import Registry
from registrator.docker.engine import DockerEngine
from registrator.registries.catalog.registry import ConsulCatalog
from registrator.registries.consul.agent import ConsulAgent
from registrator.registries.consul.target import ConsulTarget
from tests.integration.support import Containers
from tests.unit.fakes import FakeConsul, FakeDocker


@pytest.fixture(params=["fake", "agent", "catalog"])
def registry(request: pytest.FixtureRequest, consul: ConsulDevAgent) -> Iterator[Registry]:
    """The fake, the agent, and the catalog registry (a node of its own, on the same server)."""
    if request.param == "fake":
        yield FakeConsul()
        return
    target = ConsulTarget(base_url=f"http://{consul.address}")
    if request.param == "catalog":
        catalog = ConsulCatalog(target)
        node = f"contract-node-{uuid.uuid4().hex[:8]}"
        catalog.own_node(node, "127.0.0.1")
        yield catalog
        consul.request("PUT", "/v1/catalog/deregister", {"Node": node})
        catalog.close()
        return
    agent = ConsulAgent(target)
    yield agent
    agent.close()


def service(owner: str, *checks: Check, port: int = 80) -> Service:
    return Service(
        id=ServiceID(f"{owner}:web:80"),
        name="web",
        address="192.0.2.1",
        port=port,
        tags=("a",),
        meta=((OWNER_META_KEY, owner),),
        checks=checks,
    )


def ttl(owner: str, status: str | None = "passing", **definition: str) -> Check:
    fields = tuple(sorted({"TTL": "60s", **definition}.items()))
    return Check(f"service:{owner}:web:80:ttl", "web TTL", "ttl", fields, "n", status, "out")


@pytest.fixture
def owner() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}"


def test_a_registered_service_reads_back_as_stored(registry: Registry, owner: str) -> None:
    web = service(owner, ttl(owner))
    registry.register(web)

    [(sid, held)] = registry.services(owner=owner).items()

    assert sid == web.id
    assert registry.stored(held) == registry.stored(web)
    assert [(c.status, c.output) for c in held.checks] == [("passing", "")]


def test_only_the_owners_services_and_the_asked_ids_are_listed(
    registry: Registry, owner: str
) -> None:
    registry.register(service(owner))
    registry.register(service(f"{owner}-other"))

    assert set(registry.services(owner=owner)) == {f"{owner}:web:80"}
    assert registry.services(owner=owner, ids=[ServiceID(f"{owner}:other:80")]) == {}


def test_maintenance_has_its_reason_and_a_re_registration_ends_it(
    registry: Registry, owner: str
) -> None:
    web = service(owner)
    registry.register(web)
    registry.set_maintenance(web.id, enabled=True, reason="container paused")

    assert registry.services(owner=owner)[web.id].maintenance == "container paused"
    registry.register(dataclasses.replace(web, port=81))
    assert registry.services(owner=owner)[web.id].maintenance == ""
    registry.set_maintenance(web.id, enabled=True, reason="container paused")
    registry.set_maintenance(web.id, enabled=False)
    assert registry.services(owner=owner)[web.id].maintenance == ""


def test_a_ttl_status_update_keeps_across_a_re_registration(registry: Registry, owner: str) -> None:
    check = ttl(owner, status="critical")
    registry.register(service(owner, check))
    registry.update_ttl(dataclasses.replace(check, status="warning", output="slow"))
    registry.register(service(owner, check, port=81))

    [held] = registry.services(owner=owner)[ServiceID(f"{owner}:web:80")].checks
    assert (held.status, held.output) == ("warning", "slow")


def test_a_ttl_update_of_an_unknown_check_fails(registry: Registry, owner: str) -> None:
    with pytest.raises(RegistryError):
        registry.update_ttl(ttl(f"{owner}-missing"))


def test_deregistering_a_missing_service_is_no_error(registry: Registry, owner: str) -> None:
    registry.deregister(ServiceID(f"{owner}:never:80"))


def test_one_agent_names_one_node_from_call_to_call(registry: Registry) -> None:
    """What the node check relies on: only a balancer in front of agents changes the answer."""
    first = registry.node()

    assert first
    assert [registry.node() for _ in range(3)] == [first] * 3


def test_a_duration_beyond_go_range_is_refused_and_nothing_is_registered(
    registry: Registry, owner: str
) -> None:
    refused = service(owner, ttl(owner, TTL="99999999999999999999s"))

    with pytest.raises(RegistryRefused):
        registry.register(refused)
    assert registry.services(owner=owner) == {}


def test_the_fake_docker_source_resolves_a_network_peer_as_the_engine_does(
    containers: Containers, exposing_image: str
) -> None:
    pod = containers.run(ports={80: 0})
    app = containers.run(["sleep", "300"], image=exposing_image, network_mode=f"container:{pod}")
    engine = DockerEngine.connect()
    fake = FakeDocker()
    try:
        for container in (pod, app):
            found = engine.inspect(ContainerID(container))
            assert found is not None
            fake.add(dataclasses.replace(found, network_peer=None))
        real = engine.inspect(ContainerID(app))
        assert real is not None
        assert real.network_peer is not None
        assert fake.inspect(ContainerID(app)) == real
        assert engine.inspect(ContainerID("0" * 64)) is None
        assert fake.inspect(ContainerID("0" * 64)) is None
    finally:
        engine.close()
