"""behaviour.md section 2 against the real Docker daemon and a real Consul agent, row by row."""

from __future__ import annotations

import uuid

from harness import ConsulDevAgent, wait_until
from tests.integration.support import (
    Containers,
    StartRegistrator,
    registered_service,
    run_registrator,
)

AGENT_ADDRESS = "127.0.0.1"  # what the dev agent advertises


def gone(consul: ConsulDevAgent, service_id: str) -> None:
    wait_until(lambda: service_id not in consul.services(), what=f"{service_id} deregistered")


def test_published_tcp_and_udp_ports_and_a_specific_host_ip(
    consul: ConsulDevAgent, containers: Containers, start_registrator: StartRegistrator
) -> None:
    identity = f"test-{uuid.uuid4().hex[:8]}"
    dns = containers.run(
        env={"SERVICE_NAME": "dns"},
        ports={80: None, "53/udp": ("127.0.0.2",)},
    )
    start_registrator(consul.uri, "--hostname", identity, "-ip", "192.0.2.1")
    prefix = f"{identity}:{containers.name(dns)}"

    tcp = registered_service(consul, f"{prefix}:80")
    udp = registered_service(consul, f"{prefix}:53:udp")

    assert (tcp["Service"], tcp["Address"], tcp["Tags"]) == ("dns-80", "192.0.2.1", [])
    assert tcp["Port"] == containers.host_port(dns)
    assert (udp["Service"], udp["Address"], udp["Tags"]) == ("dns-53", "127.0.0.2", ["udp"])
    assert udp["Port"] == containers.host_port(dns, "53/udp")


def test_host_network_registers_exposed_ports_at_the_agent_address(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    port, udp_port = 20001, 20002  # exposed on the host's network, never bound: numbers only
    host = containers.run(
        ["sleep", "300"],
        expose=[port, f"{udp_port}/udp"],
        network_mode="host",
        env={"SERVICE_NAME": "on-host"},
    )
    start_registrator(consul.uri, "--hostname", identity)
    prefix = f"{identity}:{containers.name(host)}"

    tcp = registered_service(consul, f"{prefix}:{port}")
    udp = registered_service(consul, f"{prefix}:{udp_port}:udp")

    assert (tcp["Address"], tcp["Port"]) == (AGENT_ADDRESS, port)
    assert (udp["Address"], udp["Port"], udp["Tags"]) == (AGENT_ADDRESS, udp_port, ["udp"])


def test_internal_registers_container_addresses_on_user_defined_networks(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    front, back = containers.network(), containers.network()
    default = containers.run(expose=[80], ports={8080: None}, command=["sleep", "300"])
    compose = containers.run(expose=[80], network_mode=front, labels={"SERVICE_NETWORK": back})
    containers.api.connect_container_to_network(compose, back)
    start_registrator(consul.uri, "--hostname", identity, "--internal", "-ip", "192.0.2.1")

    exposed = registered_service(consul, f"{identity}:{containers.name(default)}:80")
    published = registered_service(consul, f"{identity}:{containers.name(default)}:8080")
    chosen = registered_service(consul, f"{identity}:{containers.name(compose)}:80")

    assert (exposed["Address"], exposed["Port"]) == (containers.address(default), 80)
    assert (published["Address"], published["Port"]) == (containers.address(default), 8080)
    assert (chosen["Address"], chosen["Port"]) == (containers.address(compose, back), 80)


def test_network_connect_and_disconnect_follow_service_network(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    front, back = containers.network(), containers.network()
    app = containers.run(expose=[80], network_mode=front, env={"SERVICE_NETWORK": back})
    reg = start_registrator(consul.uri, "--hostname", identity, "--internal")
    service_id = f"{identity}:{containers.name(app)}:80"
    reg.wait_for_log(f"key=SERVICE_NETWORK value={back}")
    reg.wait_for_log("reconcile.done scope=full")  # the pass that logged it has written all
    assert service_id not in consul.services()

    containers.api.connect_container_to_network(app, back)
    service = registered_service(consul, service_id)
    assert service["Address"] == containers.address(app, back)

    containers.api.disconnect_container_from_network(app, back)
    gone(consul, service_id)


def test_several_networks_without_a_choice_take_the_first_by_name_and_log_it(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    first, second = sorted([containers.network(), containers.network()])
    app = containers.run(expose=[80], network_mode=second)
    containers.api.connect_container_to_network(app, first)
    reg = start_registrator(consul.uri, "--hostname", identity, "--internal")

    service = registered_service(consul, f"{identity}:{containers.name(app)}:80")

    assert service["Address"] == containers.address(app, first)
    reg.wait_for_log(f"container={containers.name(app)} key=SERVICE_NETWORK")
    chosen = start_registrator(
        consul.uri, "--hostname", f"{identity}-b", "--internal", "--network", second
    )
    other = registered_service(consul, f"{identity}-b:{containers.name(app)}:80")
    assert other["Address"] == containers.address(app, second)
    assert "key=SERVICE_NETWORK" not in chosen.log


def test_network_mode_container_registers_at_the_peers_published_port(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    exposing_image: str,
) -> None:
    peer = containers.run(ports={80: None}, env={"SERVICE_IGNORE": "true"})
    app = containers.run(
        ["sleep", "300"],
        image=exposing_image,
        network_mode=f"container:{peer}",
        env={"SERVICE_NAME": "app"},
    )
    start_registrator(consul.uri, "--hostname", identity)

    service = registered_service(consul, f"{identity}:{containers.name(app)}:80")

    assert (service["Service"], service["Address"]) == ("app", AGENT_ADDRESS)
    assert service["Port"] == containers.host_port(peer)


def test_address_from_a_label_with_and_without_prefix_length_and_missing(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    cidr = containers.run(ports={80: None}, labels={"svc.ip": "192.0.2.10/24"})
    plain = containers.run(ports={80: None}, labels={"svc.ip": "192.0.2.11"})
    missing = containers.run(ports={80: None})
    reg = start_registrator(consul.uri, "--hostname", identity, "-useIpFromLabel", "svc.ip")

    addresses = [
        registered_service(consul, f"{identity}:{containers.name(c)}:80")["Address"]
        for c in (cidr, plain, missing)
    ]

    assert addresses == ["192.0.2.10", "192.0.2.11", AGENT_ADDRESS]
    reg.wait_for_log(f"container={containers.name(missing)} key=svc.ip")


def test_rename_replaces_the_service_id(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    web = containers.run(ports={80: None})
    start_registrator(consul.uri, "--hostname", identity)
    old_id = f"{identity}:{containers.name(web)}:80"
    registered_service(consul, old_id)
    new_name = f"rt-renamed-{uuid.uuid4().hex[:8]}"

    containers.api.rename(web, new_name)

    registered_service(consul, f"{identity}:{new_name}:80")
    gone(consul, old_id)


def test_explicit_registers_only_named_ports(
    consul: ConsulDevAgent, containers: Containers, identity: str
) -> None:
    named = containers.run(ports={80: None, 443: None}, env={"SERVICE_443_NAME": "tls"})
    unnamed = containers.run(ports={80: None})

    done = run_registrator("--resync", "--hostname", identity, "-explicit", consul.uri)

    assert done.returncode == 0, done.stderr
    services = consul.services(owner=identity)
    assert [s["Service"] for s in services.values()] == ["tls"]
    assert f"{identity}:{containers.name(named)}:443" in services
    assert containers.name(unnamed)


def test_require_label_registers_only_containers_carrying_it(
    consul: ConsulDevAgent, containers: Containers, identity: str
) -> None:
    label = f"registrator.test.opt-in-{uuid.uuid4().hex[:8]}"
    opted_in = containers.run(ports={80: None}, labels={label: "yes"})
    containers.run(ports={80: None})

    done = run_registrator("--resync", "--hostname", identity, "--require-label", label, consul.uri)

    assert done.returncode == 0, done.stderr
    assert list(consul.services(owner=identity)) == [f"{identity}:{containers.name(opted_in)}:80"]


def test_a_bad_key_is_logged_and_skipped_while_the_rest_registers(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    shop = containers.run(
        ports={80: None, 443: None},
        env={"SERVICE_80_NAME": "shop", "SERVICE_BAD.KEY": "x", "SERVICE_REGION": "eu"},
        labels={"SERVICE_443_NAME": "my shop", "SERVICE_8081_NAME": "typo"},
    )
    reg = start_registrator(consul.uri, "--hostname", identity)
    name = containers.name(shop)

    service = registered_service(consul, f"{identity}:{name}:80")

    assert service["Meta"] == {"region": "eu", "registrator_host": identity}
    reg.wait_for_log(f'container={name} key=SERVICE_443_NAME value="my shop"')
    reg.wait_for_log(f"container={name} key=SERVICE_BAD.KEY value=x")
    reg.wait_for_log(f"container={name} key=SERVICE_8081_NAME value=typo")
    assert f"{identity}:{name}:443" not in consul.services()
    later = containers.run(ports={80: None})
    registered_service(consul, f"{identity}:{containers.name(later)}:80")
    assert reg.process is not None
    assert reg.process.poll() is None
