"""Translating captured `docker inspect` JSON into `Container`."""

from __future__ import annotations

from registrator.core.model import Binding, Health, NetworkAddress, Port
from registrator.docker.inspect import container_from_inspect, parse_env
from tests.support import load_fixture


def test_published_container_translates() -> None:
    c = container_from_inspect(load_fixture("inspect-web-published.json"))

    assert c.name == "web-published"
    assert c.image == "registrator-test/busybox"
    assert c.env["SERVICE_NAME"] == "web"
    assert c.env["SERVICE_TAGS"] == "a,b\\,c"
    assert c.running
    assert not c.paused
    assert c.status == "running"
    assert c.networks == {"bridge": NetworkAddress("172.17.0.2")}
    (port,) = c.ports
    assert port.port == 80
    assert port.protocol == "tcp"
    assert {b.host_ip for b in port.bindings} == {"0.0.0.0", "::"}


def test_exposed_and_published_ports_are_merged_and_sorted() -> None:
    c = container_from_inspect(load_fixture("inspect-two-ports.json"))

    assert [(p.port, len(p.bindings)) for p in c.ports] == [(80, 2), (8080, 1), (9000, 0)]
    assert c.ports[1].bindings[0].host_ip == "127.0.0.1"
    assert c.labels["SERVICE_8080_NAME"] == "admin"


def test_stopped_container_keeps_its_exit_code() -> None:
    c = container_from_inspect(load_fixture("inspect-stopped.json"))

    assert not c.running
    assert c.exit_code == 3
    assert c.status == "exited"


def test_sparse_inspect_data_does_not_raise() -> None:
    c = container_from_inspect(
        {"Id": "abc", "NetworkSettings": {"Ports": {"80/tcp": None, "bad": [], "x/udp": []}}}
    )

    assert c.id == "abc"
    assert c.ports == (Port(80, "tcp"),)
    assert not c.running


def test_non_numeric_host_ports_are_dropped() -> None:
    data = {
        "NetworkSettings": {
            "Ports": {
                "80/tcp": [{"HostIp": "", "HostPort": ""}, {"HostIp": "", "HostPort": "8080"}]
            }
        }
    }

    assert container_from_inspect(data).ports[0].bindings == (Binding("", 8080),)


def test_env_parsing_takes_the_last_value_and_keeps_equals_signs() -> None:
    assert parse_env(["A=1", "B", "A=2=3", "=x"]) == {"A": "2=3", "B": ""}


def test_healthcheck_state_is_read_with_the_last_probe_output() -> None:
    c = container_from_inspect(load_fixture("inspect-healthcheck.json"))

    assert c.health == Health(status="unhealthy", output="probing")


def test_a_container_without_healthcheck_has_no_health() -> None:
    assert container_from_inspect(load_fixture("inspect-web-published.json")).health is None


def test_a_healthcheck_not_yet_run_is_starting_and_a_disabled_one_is_none() -> None:
    data = load_fixture("inspect-healthcheck.json")
    del data["State"]["Health"]
    assert container_from_inspect(data).health == Health(status="starting")
    data["Config"]["Healthcheck"] = {"Test": ["NONE"]}
    assert container_from_inspect(data).health is None
