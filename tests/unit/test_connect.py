"""Consul Connect in the plan: the keys, the sidecar as part of its service, its refusals."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest

from registrator.core.derive import derive
from registrator.core.errors import RegistryRefused
from registrator.core.model import (
    Binding,
    Connect,
    Container,
    ContainerID,
    Derivation,
    NetworkAddress,
    Port,
    Service,
    ServiceID,
    SwarmTask,
    Upstream,
)
from registrator.core.plan import ClearMaintenance, Deregister, Register, SetMaintenance
from registrator.core.plan import plan as plan_for
from registrator.core.policy import Policy
from registrator.core.refusals import fallback
from registrator.registries.consul.held import reported
from registrator.registries.consul.payload import service_payload, services_from_agent
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.startup import reconciler_for
from registrator.runtime.work import Changes
from tests.support import POLICY
from tests.unit.fakes import FakeConsul, FakeDocker

#: plans as against the Consul agent, which keeps a service as `reported` says
plan = functools.partial(plan_for, stored=reported)


def app(labels: dict[str, str] | None = None, **env: str) -> Container:
    return Container(
        id=ContainerID("c1"),
        name="web",
        image="nginx",
        env=env,
        labels=labels or {},
        ports=(Port(80, "tcp", (Binding("127.0.0.1", 32768),)),),
    )


def derived(container: Container, policy: Policy = POLICY) -> tuple[Service, Derivation]:
    derivation = derive(container, policy)
    [service] = derivation.services
    return service, derivation


def problems(derivation: Derivation) -> list[tuple[str, str]]:
    return [(p.key, p.value) for p in derivation.problems]


def test_a_sidecar_reaches_the_app_where_it_is_registered_and_leaves_consul_its_checks() -> None:
    service, derivation = derived(app(SERVICE_CONNECT="sidecar"))

    assert service.connect == Connect(local_address="127.0.0.1", local_port=32768)
    assert service.sidecar_id == "h:web:80-sidecar-proxy"
    assert not derivation.problems
    assert all(not k.startswith("connect") for k, _ in service.meta)


def test_internal_makes_the_proxy_reach_the_container_address() -> None:
    container = dataclasses.replace(
        app(), labels={"SERVICE_80_CONNECT": "sidecar"}, networks={"bridge": _ipv4("172.17.0.5")}
    )

    service, _ = derived(container, dataclasses.replace(POLICY, internal=True))

    assert service.connect is not None
    assert (service.connect.local_address, service.connect.local_port) == ("172.17.0.5", 80)


def _ipv4(address: str) -> NetworkAddress:
    return NetworkAddress(ipv4=address)


def test_native_marks_the_service_and_has_no_proxy_to_configure() -> None:
    service, derivation = derived(app(SERVICE_CONNECT="native", SERVICE_CONNECT_UPSTREAMS="db:1"))

    assert service.connect == Connect(native=True)
    assert service.sidecar_id is None
    assert problems(derivation) == [("SERVICE_CONNECT_UPSTREAMS", "db:1")]


def test_upstreams_alone_ask_for_a_sidecar_and_take_three_forms() -> None:
    value = "db:9191,dc2:payments:9300,cache:127.0.0.2:9192,dc3:q:127.0.0.3:9400"

    service, derivation = derived(app(SERVICE_CONNECT_UPSTREAMS=value))

    assert service.connect is not None
    assert service.connect.upstreams == (
        Upstream("db", 9191),
        Upstream("payments", 9300, "dc2"),
        Upstream("cache", 9192, bind_address="127.0.0.2"),
        Upstream("q", 9400, "dc3", "127.0.0.3"),
    )
    assert not derivation.problems


def test_each_bad_upstream_is_one_problem_and_the_rest_registers() -> None:
    value = "db:9191,nope,db2:99999,-x:9000,again:9191,dc/2:a:9000,ok:9200"

    service, derivation = derived(app(SERVICE_CONNECT_UPSTREAMS=value))

    assert service.connect is not None
    assert [u.destination for u in service.connect.upstreams] == ["db", "ok"]
    key = "SERVICE_CONNECT_UPSTREAMS"
    bad = ["nope", "db2:99999", "-x:9000", "again:9191", "dc/2:a:9000"]
    assert problems(derivation) == [(key, item) for item in bad]
    assert all(p.container == "web" for p in derivation.problems)


@pytest.mark.parametrize(("value", "connected"), [("false", False), ("true", True), ("x", False)])
def test_connect_values(value: str, connected: bool) -> None:
    service, derivation = derived(app(SERVICE_CONNECT=value))

    assert (service.connect is not None) is connected
    assert bool(derivation.problems) is (value == "x")


def test_a_proxy_listening_elsewhere_gets_checks_that_probe_it_there() -> None:
    service, derivation = derived(
        app(
            SERVICE_CONNECT="sidecar",
            SERVICE_CONNECT_ADDRESS="10.1.1.1",
            SERVICE_CONNECT_PORT="21000",
        )
    )

    connect = service.connect
    assert connect is not None
    assert not derivation.problems
    assert (connect.address, connect.port) == ("10.1.1.1", 21000)
    tcp, alias = connect.checks
    assert tcp.id == "service:h:web:80-sidecar-proxy:tcp"
    assert dict(tcp.definition)["TCP"] == "10.1.1.1:21000"
    assert dict(alias.definition) == {"AliasService": "h:web:80"}


def test_an_address_without_a_port_is_ignored_with_a_reason() -> None:
    service, derivation = derived(
        app(SERVICE_CONNECT_ADDRESS="10.1.1.1", SERVICE_CONNECT="sidecar")
    )

    assert service.connect is not None
    assert service.connect.address == ""
    assert problems(derivation) == [("SERVICE_CONNECT_ADDRESS", "10.1.1.1")]


def test_declared_proxy_checks_without_a_known_port_are_held_critical() -> None:
    service, derivation = derived(
        app(SERVICE_CONNECT="sidecar", SERVICE_CONNECT_CHECK_HTTP="/ready")
    )

    assert service.connect is not None
    stand_in, alias = service.connect.checks
    assert stand_in.status == "critical"
    assert alias.kind == "alias"
    assert [p.key for p in derivation.problems] == ["SERVICE_CONNECT_PORT"]
    assert service.checks == ()  # the service's own checks are not the proxy's


def test_declared_proxy_checks_probe_the_proxy() -> None:
    service, _ = derived(
        app(
            SERVICE_CONNECT_UPSTREAMS="db:9191",
            SERVICE_CONNECT_PORT="21000",
            SERVICE_CONNECT_CHECK_HTTP="/ready",
            SERVICE_CONNECT_CHECK_INTERVAL="5s",
        )
    )

    assert service.connect is not None
    http, _ = service.connect.checks
    assert dict(http.definition) == {"HTTP": "http://127.0.0.1:21000/ready", "Interval": "5s"}


@pytest.mark.parametrize(
    "container",
    [
        dataclasses.replace(app(SERVICE_CONNECT="sidecar"), swarm=SwarmTask("s", "web", "t")),
        app(SERVICE_CONNECT_UPSTREAMS="db:1"),
    ],
)
def test_where_connect_cannot_be_honoured_its_keys_are_ignored_and_noted(
    container: Container,
) -> None:
    keyed = dataclasses.replace(POLICY, connect=container.swarm is not None)

    service, derivation = derived(container, keyed)

    assert service.connect is None
    assert derivation.connect_ignored.startswith("SERVICE_CONNECT")
    assert not derivation.problems


def sidecar_service() -> Service:
    service, _ = derived(app(SERVICE_CONNECT_UPSTREAMS="db:9191", SERVICE_TAGS="a"))
    return service


def test_maintenance_covers_the_sidecar_and_losing_the_sidecar_removes_it() -> None:
    have = sidecar_service()
    drained = dataclasses.replace(sidecar_service(), maintenance="draining")
    sidecar = ServiceID("h:web:80-sidecar-proxy")

    [set_] = plan({have.id: drained}, {have.id: have}).actions
    [clear] = plan({have.id: have}, {have.id: drained}).actions
    register, remove = plan(
        {have.id: dataclasses.replace(sidecar_service(), connect=None)}, {have.id: have}
    ).actions

    assert set_ == SetMaintenance(have.id, "draining", sidecar=sidecar)
    assert clear == ClearMaintenance(have.id, sidecar=sidecar)
    assert isinstance(register, Register)
    assert remove == Deregister(sidecar)


def test_the_payload_registers_the_sidecar_with_the_service_tags_meta_and_proxy() -> None:
    service = sidecar_service()

    sidecar = service_payload(service)["Connect"]["SidecarService"]

    assert sidecar["Tags"] == ["a"]
    assert sidecar["Meta"] == dict(service.meta)
    assert "Port" not in sidecar
    assert "Checks" not in sidecar
    assert sidecar["Proxy"] == {
        "LocalServiceAddress": "127.0.0.1",
        "LocalServicePort": 32768,
        "Upstreams": [
            {
                "DestinationType": "service",
                "DestinationName": "db",
                "Datacenter": "",
                "LocalBindAddress": "127.0.0.1",
                "LocalBindPort": 9191,
            }
        ],
        "Config": {"bind_address": "127.0.0.1"},
    }
    assert service_payload(dataclasses.replace(sidecar_service(), connect=Connect(native=True)))[
        "Connect"
    ] == {"Native": True}


def agent_listing(maintenance: dict[str, str]) -> dict[ServiceID, Service]:
    """What the agent lists for a service and the sidecar it registered (as Consul 1.8.7 did)."""
    parent: dict[str, Any] = {
        "ID": "h:web:80",
        "Service": "nginx",
        "Address": "127.0.0.1",
        "Port": 32768,
    }
    parent |= {"Tags": ["a"], "Meta": {"registrator_host": "h"}}
    proxy: dict[str, Any] = {"DestinationServiceID": "h:web:80", "LocalServiceAddress": "127.0.0.1"}
    proxy |= {
        "LocalServicePort": 32768,
        "Upstreams": [
            {"DestinationName": "db", "LocalBindPort": 9191, "LocalBindAddress": "127.0.0.1"}
        ],
    }
    sidecar = {**parent, "ID": "h:web:80-sidecar-proxy", "Kind": "connect-proxy", "Port": 21000}
    sidecar |= {"Service": "nginx-sidecar-proxy", "Proxy": proxy}
    default = Service(ServiceID("x"), "x", "", 0).checks
    return services_from_agent([parent, sidecar], maintenance, {"h:web:80-sidecar-proxy": default})


def test_the_read_back_folds_the_sidecar_into_its_service_as_registered() -> None:
    [(sid, held)] = agent_listing({}).items()

    assert sid == "h:web:80"
    assert held.connect is not None
    assert held.connect.port == 21000
    assert plan({sid: sidecar_service()}, {sid: held}).empty


@pytest.mark.parametrize(
    ("maintenance", "desired", "action"),
    [
        ({"h:web:80": "draining"}, "draining", SetMaintenance),
        ({"h:web:80-sidecar-proxy": "draining"}, "", ClearMaintenance),
        ({"h:web:80": "d", "h:web:80-sidecar-proxy": "d"}, "d", None),
    ],
)
def test_a_pair_half_in_maintenance_is_set_again(
    maintenance: dict[str, str], desired: str, action: type | None
) -> None:
    [(sid, held)] = agent_listing(maintenance).items()

    actions = plan(
        {sid: dataclasses.replace(sidecar_service(), maintenance=desired)}, {sid: held}
    ).actions

    assert [type(a) for a in actions] == ([action] if action else [])


def test_a_refused_sidecar_costs_its_service_only_connect_first() -> None:
    desired = dataclasses.replace(
        sidecar_service(), meta=(("region", "eu"), ("registrator_host", "h"))
    )

    without = fallback(desired, desired, "no port left")
    assert without == dataclasses.replace(desired, connect=None)
    plainer = fallback(desired, without, "again")
    assert plainer is not None
    assert plainer.connect is None
    assert [c.id for c in plainer.checks] == ["service:h:web:80:refused"]
    plainest = fallback(desired, plainer, "yet another message")
    assert plainest is not None
    assert plainest.meta == (("registrator_host", "h"),)
    assert fallback(desired, plainest, "and another") is None


@pytest.fixture
def running() -> tuple[FakeDocker, FakeConsul, Reconciler]:
    docker, consul = FakeDocker(), FakeConsul()
    docker.add(app(SERVICE_CONNECT="sidecar", SERVICE_CONNECT_UPSTREAMS="db:9191"))
    policy = Policy(hostname="h")
    return docker, consul, reconciler_for(docker, consul, policy, retry=RetryPolicy.without_waits())


def test_a_connect_container_costs_one_write_and_an_idle_resync_none(
    running: tuple[FakeDocker, FakeConsul, Reconciler],
) -> None:
    _, consul, reconciler = running

    first = reconciler.full()
    again = reconciler.full()

    assert (first.registered, consul.writes) == (1, 1)
    assert again.plan.empty
    assert again.deregistered == 0
    assert consul.sidecars[ServiceID("h:web:80")][0].upstreams == (Upstream("db", 9191),)


def test_pause_puts_the_pair_in_maintenance_and_the_agent_wiped_restores_both(
    running: tuple[FakeDocker, FakeConsul, Reconciler],
) -> None:
    docker, consul, reconciler = running
    reconciler.full()
    docker.add(dataclasses.replace(docker.containers_by_id[ContainerID("c1")], paused=True))

    reconciler.changes(Changes(frozenset({ContainerID("c1")}), {}, frozenset()))
    held = consul.services(owner="h")[ServiceID("h:web:80")]
    assert held.maintenance == "container paused"
    consul.registered.clear()
    consul.sidecars.clear()
    reconciler.full()

    restored = consul.services(owner="h")[ServiceID("h:web:80")]
    assert restored.connect is not None
    assert restored.connect.upstreams


def test_a_drain_puts_the_service_and_its_sidecar_in_maintenance_in_two_writes(
    running: tuple[FakeDocker, FakeConsul, Reconciler],
) -> None:
    _, consul, reconciler = running
    reconciler.full()
    writes = consul.writes

    c1 = ContainerID("c1")
    ids = frozenset({c1})
    reconciler.changes(Changes(ids, signalled={c1: frozenset({15})}, signal_only=ids))

    assert consul.writes - writes == 2
    held = consul.services(owner="h")[ServiceID("h:web:80")]
    assert held.maintenance.startswith("draining")
    assert consul.sidecars[ServiceID("h:web:80")][1] == held.maintenance


class NoSidecarRange(FakeConsul):
    """An agent whose sidecar range is full: it refuses every registration with a sidecar."""

    def register(self, service: Service) -> None:
        if service.sidecar_id is not None:
            self.writes += 1
            raise RegistryRefused("PUT /v1/agent/service/register: 500 Invalid SidecarService")
        super().register(service)


def test_a_refused_sidecar_leaves_its_service_registered_without_connect_once() -> None:
    docker, consul = FakeDocker(), NoSidecarRange()
    docker.add(app(SERVICE_CONNECT="sidecar", SERVICE_CHECK_TTL="30s"))
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h"), retry=RetryPolicy.without_waits()
    )

    first = reconciler.full()
    again = [reconciler.full() for _ in range(3)]

    held = consul.registered[ServiceID("h:web:80")]
    assert first.ok
    assert all(o.plan.empty for o in again)
    assert held.connect is None
    assert [c.id for c in held.checks] == ["service:h:web:80"]
    assert consul.writes == 2  # refused once, then registered without its sidecar


def two_ports(**env: str) -> Container:
    ports = (
        Port(80, "tcp", (Binding("127.0.0.1", 32768),)),
        Port(81, "tcp", (Binding("127.0.0.1", 32769),)),
        Port(53, "udp", (Binding("127.0.0.1", 32770),)),
    )
    return dataclasses.replace(app(), env=env, ports=ports)


def test_a_local_port_is_bound_by_one_sidecar_of_the_container_and_udp_stays_out() -> None:
    derivation = derive(two_ports(SERVICE_CONNECT_UPSTREAMS="db:9191"), POLICY)

    upstreams = {s.id: (s.connect.upstreams if s.connect else None) for s in derivation.services}
    assert upstreams == {
        "h:web:53:udp": None,
        "h:web:80": (Upstream("db", 9191),),
        "h:web:81": (),
    }
    assert problems(derivation) == [("SERVICE_CONNECT_UPSTREAMS", "db:9191 (h:web:81)")]


def test_per_port_upstreams_give_each_sidecar_its_own() -> None:
    container = two_ports(
        SERVICE_80_CONNECT_UPSTREAMS="db:9191", SERVICE_81_CONNECT_UPSTREAMS="db:9192"
    )

    derivation = derive(container, POLICY)

    assert not derivation.problems
    binds = [u.bind_port for s in derivation.services if s.connect for u in s.connect.upstreams]
    assert binds == [9191, 9192]


def test_connect_on_a_udp_only_container_is_a_problem() -> None:
    container = dataclasses.replace(
        app(SERVICE_CONNECT="sidecar"), ports=(Port(53, "udp", (Binding("127.0.0.1", 5353),)),)
    )

    service, derivation = derived(container)

    assert service.connect is None
    assert [p.key for p in derivation.problems] == ["SERVICE_CONNECT"]
