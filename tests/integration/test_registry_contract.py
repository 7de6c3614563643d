"""One registry contract, held against every registry: the unit tests' fake, the real Consul
agent, catalog mode (`consul-catalog://`, a node of its own on the same agent), Consul KV and
etcd. One set of assertions, so the fake cannot drift from what the agent
does with re-registration, maintenance mode, TTL status, ownership and refused writes, and the
key-value registries keep the same promises where they hold the same things.

Each registry states what it holds through its own `stored()`: the key-value ones hold no
checks and no maintenance (a service in maintenance is not held at all), so where an assertion
is about those, theirs is that asking changes nothing. A registry joins the suite with one
entry in `REGISTRIES`. The fake Docker source is held to the real engine adapter the same way.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest

from harness import ConsulDevAgent
from harness.etcd import EtcdServer
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
from registrator.registries.open import open_registry
from tests.integration.support import Containers
from tests.unit.fakes import FakeConsul, FakeDocker


def _consul(request: pytest.FixtureRequest) -> ConsulDevAgent:
    agent: ConsulDevAgent = request.getfixturevalue("consul")
    return agent


def _etcd(request: pytest.FixtureRequest) -> EtcdServer:
    server: EtcdServer = request.getfixturevalue("etcd")
    return server


@dataclasses.dataclass(frozen=True)
class Kind:
    """A registry in the contract: its URI, opened as the daemon opens it (or the fake itself),
    given this test's fixtures and a key prefix of its own."""

    where: Callable[[pytest.FixtureRequest, str], str | FakeConsul]
    #: services belong to a node of the registry, which `node()` names
    nodes: bool = True
    #: it registers Consul Connect sidecars (a Consul agent): the service mesh contract
    mesh: bool = False


REGISTRIES = {
    "fake": Kind(lambda request, prefix: FakeConsul(), mesh=True),
    "agent": Kind(lambda request, prefix: f"consul://{_consul(request).address}", mesh=True),
    "catalog": Kind(lambda request, prefix: f"consul-catalog://{_consul(request).address}"),
    "consulkv": Kind(
        lambda request, prefix: f"consulkv://{_consul(request).address}/{prefix}", nodes=False
    ),
    "etcd": Kind(lambda request, prefix: _etcd(request).uri(f"/{prefix}"), nodes=False),
}


class Registrators:
    """Registrators of several hosts on one registry: each opens its own view of it and reads
    its own services first, as the daemon does before it writes."""

    def __init__(self, where: str | FakeConsul, stack: ExitStack) -> None:
        self._where = where
        self._stack = stack

    def open(self, owner: str) -> Registry:
        registry: Registry
        if isinstance(self._where, FakeConsul):
            registry = self._where
        else:
            opened = open_registry(self._where)
            self._stack.callback(opened.close)
            registry = opened.registry
            if opened.own_node is not None:  # catalog mode: each host a node of its own
                node = f"node-{owner}"
                opened.own_node(node, "127.0.0.1")
                self._stack.callback(_deregister_node, self._where, node)
        registry.services(owner=owner)
        return registry


def _deregister_node(uri: str, node: str) -> None:
    body = json.dumps({"Node": node}).encode()
    url = f"http://{urlsplit(uri).netloc}/v1/catalog/deregister"
    with urllib.request.urlopen(urllib.request.Request(url, body, method="PUT"), timeout=10):
        pass


@pytest.fixture
def owner() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=list(REGISTRIES))
def kind(request: pytest.FixtureRequest) -> Kind:
    return REGISTRIES[request.param]


@pytest.fixture
def registrators(request: pytest.FixtureRequest, kind: Kind, owner: str) -> Iterator[Registrators]:
    with ExitStack() as stack:
        yield Registrators(kind.where(request, owner), stack)


@pytest.fixture
def registry(registrators: Registrators, owner: str) -> Registry:
    return registrators.open(owner)


@pytest.fixture(params=[name for name, kind in REGISTRIES.items() if kind.mesh])
def mesh_registry(request: pytest.FixtureRequest, owner: str) -> Iterator[Registry]:
    """A registry that registers sidecars; only a Consul agent does (and the fake, held to it)."""
    with ExitStack() as stack:
        yield Registrators(REGISTRIES[request.param].where(request, owner), stack).open(owner)


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


def holds_checks(registry: Registry) -> bool:
    """Whether the registry holds a service's checks, as its `stored()` says."""
    kept = registry.stored(service("probe", ttl("probe")))
    return kept is not None and bool(kept.checks)


def holds_maintenance(registry: Registry) -> bool:
    """Whether the registry holds a service in maintenance (else `stored()` says it holds no
    such service: the plan removes it instead of asking for maintenance)."""
    kept = registry.stored(dataclasses.replace(service("probe"), maintenance="paused"))
    return kept is not None and kept.maintenance == "paused"


def test_a_registered_service_reads_back_as_stored(registry: Registry, owner: str) -> None:
    web = service(owner, ttl(owner))
    registry.register(web)

    [(sid, held)] = registry.services(owner=owner).items()

    assert sid == web.id
    assert registry.stored(held) == registry.stored(web)
    kept = [("passing", "")] if holds_checks(registry) else []
    assert [(c.status, c.output) for c in held.checks] == kept


def test_only_the_owners_services_and_the_asked_ids_are_listed(
    registrators: Registrators, registry: Registry, owner: str
) -> None:
    other = registrators.open(f"{owner}-other")
    registry.register(service(owner))
    other.register(service(f"{owner}-other"))

    assert set(registry.services(owner=owner)) == {f"{owner}:web:80"}
    assert set(other.services(owner=f"{owner}-other")) == {f"{owner}-other:web:80"}
    assert registry.services(owner=owner, ids=[ServiceID(f"{owner}:other:80")]) == {}


def test_a_re_registration_under_another_name_leaves_one_service(
    registry: Registry, owner: str
) -> None:
    """A renamed container's service keeps its ID: it is held once, under the new name."""
    web = service(owner)
    registry.register(web)
    registry.services(owner=owner)
    renamed = dataclasses.replace(web, name="api")
    registry.register(renamed)

    [(sid, held)] = registry.services(owner=owner).items()
    assert (sid, held.name) == (web.id, "api")
    assert registry.stored(held) == registry.stored(renamed)


def test_a_deregistered_service_is_gone(registry: Registry, owner: str) -> None:
    registry.register(service(owner))
    registry.register(dataclasses.replace(service(owner), id=ServiceID(f"{owner}:api:80")))
    registry.services(owner=owner)
    registry.deregister(service(owner).id)

    assert set(registry.services(owner=owner)) == {f"{owner}:api:80"}


def test_maintenance_has_its_reason_and_a_re_registration_ends_it(
    registry: Registry, owner: str
) -> None:
    web = service(owner)
    registry.register(web)
    registry.set_maintenance(web.id, enabled=True, reason="container paused")

    if not holds_maintenance(registry):  # never asked for: asking changes nothing
        assert registry.services(owner=owner) == {web.id: registry.stored(web)}
        return
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

    found = registry.services(owner=owner)[ServiceID(f"{owner}:web:80")]
    if not holds_checks(registry):  # never asked for: the re-registration alone shows
        assert found == registry.stored(service(owner, check, port=81))
        return
    [held] = found.checks
    assert (held.status, held.output) == ("warning", "slow")


def test_a_ttl_update_of_an_unknown_check_fails(registry: Registry, owner: str) -> None:
    if not holds_checks(registry):  # never asked for: nothing to update, nothing written
        registry.update_ttl(ttl(f"{owner}-missing"))
        assert registry.services(owner=owner) == {}
        return
    with pytest.raises(RegistryError):
        registry.update_ttl(ttl(f"{owner}-missing"))


def test_deregistering_a_missing_service_is_no_error(registry: Registry, owner: str) -> None:
    registry.deregister(ServiceID(f"{owner}:never:80"))


def test_one_agent_names_one_node_from_call_to_call(registry: Registry, kind: Kind) -> None:
    """What the node check relies on: only a balancer in front of agents changes the answer
    (a registry without nodes names none, ever)."""
    first = registry.node()

    assert bool(first) == kind.nodes
    assert [registry.node() for _ in range(3)] == [first] * 3


def test_a_duration_beyond_go_range_is_refused_and_nothing_is_registered(
    registry: Registry, owner: str
) -> None:
    """What the registry holds decides what it refuses: a duration Go cannot parse in a check,
    or, where a service is one key, a name that cannot be one segment of it."""
    if holds_checks(registry):
        refused = service(owner, ttl(owner, TTL="99999999999999999999s"))
    else:
        refused = dataclasses.replace(service(owner), name="no/slashes")

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


def test_a_sidecar_reads_back_as_part_of_its_service(mesh_registry: Registry, owner: str) -> None:
    web = in_mesh(owner)
    mesh_registry.register(web)

    listed = mesh_registry.services(owner=owner)
    asked = mesh_registry.services(owner=owner, ids=[web.id])

    assert list(listed) == [web.id]  # not `<id>-sidecar-proxy` beside it
    assert mesh_registry.stored(listed[web.id]) == mesh_registry.stored(web)
    assert mesh_registry.stored(asked[web.id]) == mesh_registry.stored(web)


def test_a_native_app_reads_back_native(mesh_registry: Registry, owner: str) -> None:
    web = dataclasses.replace(service(owner), connect=Connect(native=True))
    mesh_registry.register(web)

    assert mesh_registry.stored(
        mesh_registry.services(owner=owner)[web.id]
    ) == mesh_registry.stored(web)


def test_the_pair_is_in_maintenance_only_when_both_are(mesh_registry: Registry, owner: str) -> None:
    web = in_mesh(owner)
    mesh_registry.register(web)
    sidecar = web.sidecar_id
    assert sidecar is not None

    mesh_registry.set_maintenance(web.id, enabled=True, reason="draining")
    half = mesh_registry.services(owner=owner)[web.id].maintenance
    mesh_registry.set_maintenance(sidecar, enabled=True, reason="draining")
    both = mesh_registry.services(owner=owner)[web.id].maintenance
    mesh_registry.register(web)
    after = mesh_registry.services(owner=owner)[web.id].maintenance

    assert half not in ("", "draining")
    assert (both, after) == ("draining", "")


def test_a_sidecar_stays_until_removed_or_its_service_is(
    mesh_registry: Registry, owner: str
) -> None:
    web = in_mesh(owner)
    mesh_registry.register(web)
    mesh_registry.register(service(owner))  # the agent leaves the sidecar registered
    left = mesh_registry.services(owner=owner)[web.id].connect
    assert web.sidecar_id is not None
    assert web.connect is not None
    mesh_registry.deregister(web.sidecar_id)
    gone = mesh_registry.services(owner=owner)[web.id].connect
    mesh_registry.register(web)
    mesh_registry.deregister(web.id)

    assert left is not None
    assert left.upstreams == web.connect.upstreams
    assert gone is None
    assert mesh_registry.services(owner=owner) == {}


def test_declared_proxy_checks_read_back_as_registered(mesh_registry: Registry, owner: str) -> None:
    check = Check(
        f"service:{owner}:web:80-sidecar-proxy:tcp",
        "proxy",
        "tcp",
        (("Interval", "10s"), ("TCP", "127.0.0.1:21999")),
        "n",
    )
    web = in_mesh(owner, port=21999, address="127.0.0.1", checks=(check,))
    mesh_registry.register(web)

    held = mesh_registry.services(owner=owner)[web.id]
    assert mesh_registry.stored(held) == mesh_registry.stored(web)
    assert held.connect is not None
    assert held.connect.port == 21999
