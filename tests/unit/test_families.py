"""IPv4 and IPv6: the family registered, tagged addresses, IPv6 bindings and bracketed checks."""

from __future__ import annotations

import dataclasses

import pytest

from registrator.core.derive import derive
from registrator.core.families import pick_binding
from registrator.core.model import (
    Binding,
    Container,
    ContainerID,
    NetworkAddress,
    Port,
    Service,
    TaggedAddress,
)
from registrator.core.policy import Policy
from registrator.docker.inspect import container_from_inspect
from tests.support import POLICY, load_fixture

INTERNAL = dataclasses.replace(POLICY, internal=True)
DUAL = NetworkAddress("172.31.251.2", "fd42:7e57:1::2")


def dual_stack() -> Container:
    """Captured: on a `docker network create --ipv6` network, `-p [::1]:8080:80 --expose 9090`,
    label SERVICE_ADDRESS_FAMILY=ipv6."""
    return container_from_inspect(load_fixture("inspect-dual-stack.json"))


def worker(**changes: object) -> Container:
    base = Container(
        ContainerID("w"), "worker", "worker", ports=(Port(80, "tcp"),), networks={"net": DUAL}
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def services(container: Container, policy: Policy = POLICY) -> dict[int, Service]:
    return {int(s.id.split(":")[2]): s for s in derive(container, policy).services}


def test_inspect_keeps_both_addresses_of_a_dual_stack_network() -> None:
    assert dual_stack().networks == {"cap-dual": DUAL}


def test_both_families_default_to_ipv4_and_both_are_tagged() -> None:
    (service,) = derive(worker(), INTERNAL).services

    assert (service.address, service.port) == ("172.31.251.2", 80)
    assert service.tagged_addresses == (
        TaggedAddress("lan_ipv4", "172.31.251.2", 80),
        TaggedAddress("lan_ipv6", "fd42:7e57:1::2", 80),
    )


def test_the_declared_family_is_registered_per_port_too() -> None:
    ports = (Port(80, "tcp"), Port(81, "tcp"))
    env = {"SERVICE_ADDRESS_FAMILY": "ipv6", "SERVICE_81_ADDRESS_FAMILY": "IPv4"}

    found = services(worker(ports=ports, env=env), INTERNAL)

    assert (found[80].address, found[81].address) == ("fd42:7e57:1::2", "172.31.251.2")
    for port, service in found.items():  # whichever is registered, both are tagged
        assert [(t.key, t.address, t.port) for t in service.tagged_addresses] == [
            ("lan_ipv4", "172.31.251.2", port),
            ("lan_ipv6", "fd42:7e57:1::2", port),
        ]


def test_an_ipv6_only_network_registers_its_ipv6_address() -> None:
    (service,) = derive(worker(networks={"v6": NetworkAddress(ipv6="fd00::2")}), INTERNAL).services

    assert service.address == "fd00::2"
    assert service.tagged_addresses == (TaggedAddress("lan_ipv6", "fd00::2", 80),)


def test_a_family_the_container_lacks_skips_the_port_and_says_so() -> None:
    c = worker(networks={"v4": NetworkAddress("10.1.0.2")}, env={"SERVICE_ADDRESS_FAMILY": "ipv6"})

    d = derive(c, INTERNAL)

    assert d.services == ()
    (problem,) = d.problems
    assert (problem.key, problem.value) == ("SERVICE_ADDRESS_FAMILY", "ipv6")
    assert "no ipv6 address" in problem.reason


def test_an_unknown_family_is_reported_and_the_default_used() -> None:
    d = derive(worker(env={"SERVICE_ADDRESS_FAMILY": "ipv5"}), INTERNAL)

    assert d.services[0].address == "172.31.251.2"
    assert d.problems[0].key == "SERVICE_ADDRESS_FAMILY"


def test_a_specific_ipv6_host_binding_registers_that_address() -> None:
    found = services(dual_stack())

    assert list(found) == [80]  # 9090 is exposed only
    assert (found[80].address, found[80].port) == ("::1", 8080)
    assert found[80].tagged_addresses == (TaggedAddress("lan_ipv6", "::1", 8080),)


def test_with_internal_the_captured_container_registers_its_ipv6_address() -> None:
    found = services(dual_stack(), INTERNAL)

    assert [(s.address, s.port) for s in found.values()] == [
        ("fd42:7e57:1::2", 80),
        ("fd42:7e57:1::2", 9090),
    ]


def test_ipv4_asked_of_a_port_published_on_ipv6_only_skips_it() -> None:
    c = dataclasses.replace(dual_stack(), labels={"SERVICE_ADDRESS_FAMILY": "ipv4"})

    d = derive(c, POLICY)

    assert d.services == ()
    assert d.problems[0].key == "SERVICE_ADDRESS_FAMILY"
    assert "not published on an ipv4 address" in d.problems[0].reason


def test_both_families_published_on_specific_addresses_are_both_tagged() -> None:
    port = Port(80, "tcp", (Binding("::1", 8081), Binding("127.0.0.1", 8080)))

    (service,) = derive(worker(ports=(port,)), POLICY).services

    assert (service.address, service.port) == ("127.0.0.1", 8080)
    assert service.tagged_addresses == (
        TaggedAddress("lan_ipv4", "127.0.0.1", 8080),
        TaggedAddress("lan_ipv6", "::1", 8081),
    )


@pytest.mark.parametrize(
    ("family", "expected"), [(None, "0.0.0.0"), ("ipv4", "0.0.0.0"), ("ipv6", "::")]
)
def test_dockers_two_bindings_collapse_to_the_family_asked_for(
    family: str | None, expected: str
) -> None:
    bindings = (Binding("::", 32768), Binding("0.0.0.0", 32768))

    picked = pick_binding(bindings, family)  # type: ignore[arg-type]

    assert picked is not None
    assert picked.host_ip == expected


def test_an_ipv6_ip_option_is_the_host_address_for_every_family_that_fits() -> None:
    port = Port(80, "tcp", (Binding("0.0.0.0", 32768), Binding("::", 32768)))
    policy = dataclasses.replace(POLICY, host_ip="2001:db8::5")

    (service,) = derive(worker(ports=(port,)), policy).services
    ipv4 = derive(worker(ports=(port,), env={"SERVICE_ADDRESS_FAMILY": "ipv4"}), policy)

    assert service.address == "2001:db8::5"
    assert service.tagged_addresses == (TaggedAddress("lan_ipv6", "2001:db8::5", 32768),)
    assert ipv4.services == ()
    assert "not ipv4" in ipv4.problems[0].reason


#: Docker 20.10's two bindings of one `-p 80`, with different host ports (issue seen live)
SPLIT = Port(80, "tcp", (Binding("0.0.0.0", 33014), Binding("::", 32998)))


@pytest.mark.parametrize(
    ("host_ip", "declared", "expected"),
    [
        ("::1", None, ("::1", 32998)),
        ("::1", "ipv6", ("::1", 32998)),
        ("10.0.0.9", None, ("10.0.0.9", 33014)),
        ("10.0.0.9", "ipv4", ("10.0.0.9", 33014)),
        ("", None, ("10.0.0.5", 33014)),  # the agent's IPv4 address
    ],
)
def test_the_host_port_is_the_one_of_the_binding_of_the_registered_addresss_family(
    host_ip: str, declared: str | None, expected: tuple[str, int]
) -> None:
    env = {"SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_HTTP": "/h"}
    if declared:
        env["SERVICE_ADDRESS_FAMILY"] = declared
    policy = dataclasses.replace(POLICY, host_ip=host_ip)

    (service,) = derive(worker(ports=(SPLIT,), env=env), policy).services

    address, port = expected
    bracketed = f"[{address}]" if ":" in address else address
    family = "ipv6" if ":" in address else "ipv4"
    assert (service.address, service.port) == expected
    assert service.tagged_addresses == (TaggedAddress(f"lan_{family}", address, port),)
    targets = {c.id.rpartition(":")[2]: dict(c.definition) for c in service.checks}
    assert targets["tcp"]["TCP"] == f"{bracketed}:{port}"
    assert targets["http"]["HTTP"] == f"http://{bracketed}:{port}/h"


def test_a_family_with_no_binding_is_not_registered_and_a_line_says_so() -> None:
    only_ipv4 = Port(80, "tcp", (Binding("0.0.0.0", 33014),))
    policy = dataclasses.replace(POLICY, host_ip="::1")

    derived = derive(worker(ports=(only_ipv4,)), policy)

    assert derived.services == ()
    assert any("not published on an ipv6 address" in why for _, why in derived.skipped)


def test_the_check_port_takes_the_binding_of_the_services_family_too() -> None:
    check_port = Port(8081, "tcp", (Binding("0.0.0.0", 40001), Binding("::", 40002)))
    env = {"SERVICE_CHECK_HTTP": "/h", "SERVICE_CHECK_PORT": "8081"}
    policy = dataclasses.replace(POLICY, host_ip="::1")

    (service,) = derive(worker(ports=(SPLIT, check_port), env=env), policy).services[:1]

    assert dict(service.checks[0].definition)["HTTP"] == "http://[::1]:40002/h"


def test_a_host_name_address_has_no_tagged_address() -> None:
    port = Port(80, "tcp", (Binding("0.0.0.0", 32768),))
    policy = dataclasses.replace(POLICY, host_ip="node1.example")

    (service,) = derive(worker(ports=(port,)), policy).services

    assert service.address == "node1.example"
    assert service.tagged_addresses == ()


def test_check_urls_and_tcp_targets_bracket_ipv6_literals() -> None:
    env = {
        "SERVICE_CHECK_HTTP": "/health",
        "SERVICE_CHECK_TCP": "true",
        "SERVICE_CHECK_GRPC": "pkg.Svc",
        "SERVICE_ADDRESS_FAMILY": "ipv6",
    }

    (service,) = derive(worker(env=env), INTERNAL).services

    targets = {c.id.rpartition(":")[2]: dict(c.definition) for c in service.checks}
    assert targets["http"]["HTTP"] == "http://[fd42:7e57:1::2]:80/health"
    assert targets["tcp"]["TCP"] == "[fd42:7e57:1::2]:80"
    assert targets["grpc"]["GRPC"] == "[fd42:7e57:1::2]:80/pkg.Svc"


def test_the_check_port_follows_the_services_family() -> None:
    env = {"SERVICE_CHECK_HTTP": "/h", "SERVICE_CHECK_PORT": "8081"}
    env["SERVICE_ADDRESS_FAMILY"] = "ipv6"

    (service,) = derive(worker(env=env), INTERNAL).services

    assert dict(service.checks[0].definition)["HTTP"] == "http://[fd42:7e57:1::2]:8081/h"
