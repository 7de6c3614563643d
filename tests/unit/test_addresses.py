"""Where a service is reachable: published, host-network, internal, peer and label addresses."""

from __future__ import annotations

import dataclasses

import pytest

from registrator.core.derive import derive
from registrator.core.label_address import address_from_label
from registrator.core.model import Binding, Container, ContainerID, NetworkAddress, Port
from registrator.core.policy import Policy
from registrator.docker.inspect import container_from_inspect
from tests.support import POLICY, load_fixture

INTERNAL = dataclasses.replace(POLICY, internal=True)


def captured(name: str) -> Container:
    return container_from_inspect(load_fixture(f"inspect-{name}.json"))


def endpoints(c: Container, policy: Policy = POLICY) -> list[tuple[str, str, int]]:
    return [(s.id, s.address, s.port) for s in derive(c, policy).services]


def container(**changes: object) -> Container:
    base = Container(
        id=ContainerID("c0ffee"),
        name="app",
        image="nginx",
        ports=(Port(80, "tcp", (Binding("0.0.0.0", 32768),)),),
        networks={"bridge": NetworkAddress("172.17.0.9")},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_published_tcp_and_udp_ports_use_host_ports_and_a_specific_host_ip() -> None:
    d = derive(captured("udp-dns"), POLICY)

    assert [(s.id, s.name, s.address, s.port, s.tags) for s in d.services] == [
        ("h:udp-dns:53", "dns", "10.0.0.5", 8053, ()),
        ("h:udp-dns:53:udp", "dns", "127.0.0.1", 8054, ("udp",)),
    ]


@pytest.mark.parametrize(
    ("policy", "address"),
    [(POLICY, "10.0.0.5"), (dataclasses.replace(POLICY, host_ip="192.0.2.1"), "192.0.2.1")],
)
def test_host_network_registers_exposed_ports_at_the_host_address(
    policy: Policy, address: str
) -> None:
    c = captured("host-net")

    assert endpoints(c, policy) == [
        ("h:host-net:7001", address, 7001),
        ("h:host-net:7002:udp", address, 7002),
    ]
    assert endpoints(c, dataclasses.replace(policy, internal=True)) == endpoints(c, policy)


def test_exposed_but_unpublished_ports_are_skipped_unless_internal() -> None:
    c = captured("exposed-only")
    ip = c.networks["bridge"].ipv4

    d = derive(c, POLICY)

    assert d.services == ()
    assert ("80/tcp", "exposed but not published") in d.skipped
    assert endpoints(c, INTERNAL) == [("h:exposed-only:80", ip, 80)]


def test_internal_registers_the_container_ip_and_port_even_when_published() -> None:
    c = captured("udp-dns")
    ip = c.networks["bridge"].ipv4

    assert endpoints(c, dataclasses.replace(INTERNAL, host_ip="192.0.2.1")) == [
        ("h:udp-dns:53", ip, 53),
        ("h:udp-dns:53:udp", ip, 53),
    ]


def test_service_network_label_chooses_among_user_defined_networks() -> None:
    c = captured("two-nets")  # on cap-front and cap-back, SERVICE_NETWORK=cap-back

    d = derive(c, INTERNAL)

    assert endpoints(c, INTERNAL) == [("h:two-nets:8080", c.networks["cap-back"].ipv4, 8080)]
    assert d.problems == ()


def test_service_network_beats_the_network_option_which_beats_the_first_by_name() -> None:
    c = captured("two-nets")
    unlabelled = dataclasses.replace(c, labels={})
    front = dataclasses.replace(INTERNAL, network="cap-front")

    assert endpoints(c, front)[0][1] == c.networks["cap-back"].ipv4
    assert endpoints(unlabelled, front)[0][1] == c.networks["cap-front"].ipv4
    assert derive(unlabelled, front).problems == ()


def test_several_networks_without_a_choice_take_the_first_by_name_and_say_so() -> None:
    c = dataclasses.replace(captured("two-nets"), labels={})
    elsewhere = dataclasses.replace(INTERNAL, network="not-attached")

    for policy in (INTERNAL, elsewhere):
        d = derive(c, policy)
        assert [s.address for s in d.services] == [c.networks["cap-back"].ipv4]
        (p,) = d.problems
        assert (p.container, p.key, p.value) == ("two-nets", "SERVICE_NETWORK", "")
        assert "cap-back, cap-front" in p.reason


def test_a_service_network_the_container_is_not_on_skips_the_port() -> None:
    c = container(env={"SERVICE_NETWORK": "backend"})

    d = derive(c, INTERNAL)

    assert d.services == ()
    (p,) = d.problems
    assert (p.key, p.value) == ("SERVICE_NETWORK", "backend")
    assert "bridge" in p.reason


def test_service_network_is_only_consulted_for_container_addresses() -> None:
    c = container(env={"SERVICE_NETWORK": "backend"})

    assert endpoints(c) == [("h:app:80", "10.0.0.5", 32768)]
    assert derive(c, POLICY).problems == ()


def test_per_port_service_network() -> None:
    c = container(
        ports=(Port(80, "tcp"), Port(81, "tcp")),
        networks={"a": NetworkAddress("10.1.0.2"), "b": NetworkAddress("10.2.0.2")},
        labels={"SERVICE_NETWORK": "a", "SERVICE_81_NETWORK": "b"},
    )

    assert [a for _, a, _ in endpoints(c, INTERNAL)] == ["10.1.0.2", "10.2.0.2"]


@pytest.mark.parametrize("networks", [{}, {"none": NetworkAddress()}])
def test_internal_without_a_container_address_skips_the_port(
    networks: dict[str, NetworkAddress],
) -> None:
    d = derive(container(networks=networks, network_mode="none"), INTERNAL)

    assert d.services == ()
    assert d.skipped == (("80/tcp", "no container address (network mode none)"),)


def test_network_mode_container_uses_the_peers_published_port_and_address() -> None:
    peer = captured("pod-peer")
    app = dataclasses.replace(captured("pod-app"), network_peer=peer)

    (s,) = derive(app, POLICY).services

    assert (s.id, s.name, s.address) == ("h:pod-app:80", "app", "10.0.0.5")
    assert s.port == peer.ports[0].bindings[0].host_port
    assert endpoints(app, INTERNAL) == [("h:pod-app:80", peer.networks["bridge"].ipv4, 80)]


def test_network_mode_container_with_an_unknown_peer_registers_nothing() -> None:
    d = derive(captured("pod-app"), POLICY)

    assert d.services == ()
    assert d.skipped[0][0] == "container"


def test_network_mode_container_of_a_host_network_peer_uses_host_rules() -> None:
    peer = captured("host-net")
    app = dataclasses.replace(captured("pod-app"), network_peer=peer)

    assert endpoints(app) == [("h:pod-app:80", "10.0.0.5", 80)]


@pytest.mark.parametrize("policy", [POLICY, INTERNAL])
def test_address_from_a_label_replaces_the_address_but_not_the_port(policy: Policy) -> None:
    c = captured("label-ip")  # label service.ip=192.0.2.10/24
    labelled = dataclasses.replace(policy, use_ip_from_label="service.ip")

    d = derive(c, labelled)

    assert [(s.address, s.port) for s in d.services] == [("192.0.2.10", endpoints(c, policy)[0][2])]
    assert d.problems == ()


def test_a_missing_address_label_falls_back_and_says_so() -> None:
    c = container()
    policy = dataclasses.replace(POLICY, use_ip_from_label="service.ip")

    d = derive(c, policy)

    assert endpoints(c, policy) == endpoints(c)
    (p,) = d.problems
    assert (p.container, p.key, p.value) == ("app", "service.ip", "")
    assert "missing" in p.reason


def test_an_invalid_address_label_falls_back_and_names_the_value() -> None:
    c = container(labels={"service.ip": "10.0.0.300/24"})
    policy = dataclasses.replace(INTERNAL, use_ip_from_label="service.ip")

    d = derive(c, policy)

    assert [s.address for s in d.services] == ["172.17.0.9"]
    (p,) = d.problems
    assert (p.key, p.value) == ("service.ip", "10.0.0.300/24")


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("10.1.2.3", "10.1.2.3"),
        ("10.1.2.3/24", "10.1.2.3"),
        (" 10.1.2.3/32 ", "10.1.2.3"),
        ("2001:db8::1/64", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("", None),
        ("10.1.2.3/", None),
        ("10.1.2.3/129", None),
        ("10.1.2.3/2x", None),
        ("10.1.2.3/²", None),
        ("host.example", None),
        ("10.1.2", None),
        ("10.1.2.3/24/8", None),
    ],
)
def test_address_from_label_parsing(value: str, address: str | None) -> None:
    assert address_from_label(value) == address


def test_ipv6_only_networks_give_their_global_address() -> None:
    data = {
        "State": {"Running": True},
        "NetworkSettings": {
            "Networks": {"v6": {"IPAddress": "", "GlobalIPv6Address": "fd00::2"}},
            "Ports": {"80/tcp": None},
        },
    }

    assert container_from_inspect(data).networks == {"v6": NetworkAddress(ipv6="fd00::2")}
