"""The unit tests' fake registry held to the real Consul agent: one set of assertions, run
against both, so the fake cannot drift from what the agent does with re-registration,
maintenance mode, TTL status, ownership and refused writes. The fake Docker source is held to
the real engine adapter the same way."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest

from harness import ConsulDevAgent
from registrator.core.errors import RegistryError, RegistryRefused
from registrator.core.model import (
    OWNER_META_KEY,
    Check,
    Connect,
    ContainerID,
    Service,
    ServiceID,
    Upstream,
)
from registrator.core.ports import Registry
from registrator.docker.engine import DockerEngine
from registrator.registries.consul.agent import ConsulAgent
from registrator.registries.consul.target import ConsulTarget
from tests.integration.support import Containers
from tests.unit.fakes import FakeConsul, FakeDocker


@pytest.fixture(params=["fake", "agent"])
def registry(request: pytest.FixtureRequest, consul: ConsulDevAgent) -> Iterator[Registry]:
    if request.param == "fake":
        yield FakeConsul()
        return
    agent = ConsulAgent(ConsulTarget(base_url=f"http://{consul.address}"))
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


def in_mesh(
    owner: str, *, port: int = 0, address: str = "", checks: tuple[Check, ...] = ()
) -> Service:
    """`service(owner)` behind a sidecar with two upstreams."""
    upstreams = (Upstream("db", 9191), Upstream("pay", 9300, "dc2", "127.0.0.2"))
    connect = Connect(
        upstreams=upstreams,
        local_address="192.0.2.1",
        local_port=80,
        address=address,
        port=port,
        checks=checks,
    )
    return dataclasses.replace(service(owner), connect=connect)


def test_a_sidecar_reads_back_as_part_of_its_service(registry: Registry, owner: str) -> None:
    web = in_mesh(owner)
    registry.register(web)

    listed = registry.services(owner=owner)
    asked = registry.services(owner=owner, ids=[web.id])

    assert list(listed) == [web.id]  # not `<id>-sidecar-proxy` beside it
    assert registry.stored(listed[web.id]) == registry.stored(web)
    assert registry.stored(asked[web.id]) == registry.stored(web)


def test_a_native_app_reads_back_native(registry: Registry, owner: str) -> None:
    web = dataclasses.replace(service(owner), connect=Connect(native=True))
    registry.register(web)

    assert registry.stored(registry.services(owner=owner)[web.id]) == registry.stored(web)


def test_the_pair_is_in_maintenance_only_when_both_are(registry: Registry, owner: str) -> None:
    web = in_mesh(owner)
    registry.register(web)
    sidecar = web.sidecar_id
    assert sidecar is not None

    registry.set_maintenance(web.id, enabled=True, reason="draining")
    half = registry.services(owner=owner)[web.id].maintenance
    registry.set_maintenance(sidecar, enabled=True, reason="draining")
    both = registry.services(owner=owner)[web.id].maintenance
    registry.register(web)
    after = registry.services(owner=owner)[web.id].maintenance

    assert half not in ("", "draining")
    assert (both, after) == ("draining", "")


def test_a_sidecar_stays_until_removed_or_its_service_is(registry: Registry, owner: str) -> None:
    web = in_mesh(owner)
    registry.register(web)
    registry.register(service(owner))  # the agent leaves the sidecar registered
    left = registry.services(owner=owner)[web.id].connect
    assert web.sidecar_id is not None
    assert web.connect is not None
    registry.deregister(web.sidecar_id)
    gone = registry.services(owner=owner)[web.id].connect
    registry.register(web)
    registry.deregister(web.id)

    assert left is not None
    assert left.upstreams == web.connect.upstreams
    assert gone is None
    assert registry.services(owner=owner) == {}


def test_declared_proxy_checks_read_back_as_registered(registry: Registry, owner: str) -> None:
    check = Check(
        f"service:{owner}:web:80-sidecar-proxy:tcp",
        "proxy",
        "tcp",
        (("Interval", "10s"), ("TCP", "127.0.0.1:21999")),
        "n",
    )
    web = in_mesh(owner, port=21999, address="127.0.0.1", checks=(check,))
    registry.register(web)

    held = registry.services(owner=owner)[web.id]
    assert registry.stored(held) == registry.stored(web)
    assert held.connect is not None
    assert held.connect.port == 21999
