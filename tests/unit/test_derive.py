"""The pure derivation: a container's inspect data -> the services it should have."""

from __future__ import annotations

import dataclasses

import pytest

from registrator.containers import container_from_inspect
from registrator.derive import Policy, default_name, derive
from registrator.model import Binding, Container, ContainerID, Port
from tests.support import load_fixture

POLICY = Policy(hostname="host1", advertise_address="10.0.0.5")


def container(**changes: object) -> Container:
    base = Container(
        id=ContainerID("c0ffee"),
        name="app",
        image="registry.example:5000/team/nginx:1.25",
        ports=(Port(80, "tcp", (Binding("0.0.0.0", 32768), Binding("::", 32768))),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_captured_container_gets_one_service_with_env_metadata() -> None:
    c = container_from_inspect(load_fixture("inspect-web-published.json"))

    (s,) = derive(c, POLICY).services

    assert s.id == "host1:web-published:80"
    assert s.name == "web"
    assert s.address == "10.0.0.5"
    assert s.port == c.ports[0].bindings[0].host_port
    assert s.tags == ("a", "b,c")
    assert dict(s.meta) == {"region": "eu", "registrator_host": "host1"}


def test_captured_two_port_container_suffixes_names_and_skips_exposed_only() -> None:
    c = container_from_inspect(load_fixture("inspect-two-ports.json"))

    d = derive(c, POLICY)

    assert [(s.id, s.name, s.address) for s in d.services] == [
        ("host1:two-ports:80", "busybox-80", "10.0.0.5"),
        ("host1:two-ports:8080", "admin", "127.0.0.1"),
    ]
    assert ("9000/tcp", "exposed but not published") in d.skipped


@pytest.mark.parametrize("fixture", ["inspect-exposed-only.json", "inspect-stopped.json"])
def test_captured_containers_without_published_running_ports_get_nothing(fixture: str) -> None:
    assert derive(container_from_inspect(load_fixture(fixture)), POLICY).services == ()


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("nginx", "nginx"),
        ("nginx:1.25", "nginx"),
        ("library/nginx:latest", "nginx"),
        ("registry.example:5000/team/api:2", "api"),
        ("redis@sha256:" + "a" * 64, "redis"),
        ("ghcr.io/org/tool:v1@sha256:" + "b" * 64, "tool"),
        ("python3.11", "python3-11"),
        ("my_app", "my-app"),
        ("", "service"),
    ],
)
def test_default_name_is_the_image_base_name(image: str, name: str) -> None:
    assert default_name(image) == name


def test_ip_option_beats_the_agent_address_and_a_specific_binding_beats_both() -> None:
    policy = dataclasses.replace(POLICY, host_ip="192.0.2.1")
    specific = container(ports=(Port(80, "tcp", (Binding("198.51.100.7", 8080),)),))

    assert derive(container(), policy).services[0].address == "192.0.2.1"
    assert derive(specific, policy).services[0].address == "198.51.100.7"


def test_ipv4_and_ipv6_bindings_collapse_into_one_service() -> None:
    (s,) = derive(container(), POLICY).services

    assert s.port == 32768


def test_several_host_bindings_of_one_port_pick_one_deterministically() -> None:
    c = container(ports=(Port(80, "tcp", (Binding("", 9002), Binding("", 9001))),))

    assert [s.port for s in derive(c, POLICY).services] == [9001]


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("a,b", ("a", "b", "forced")),
        ("b, a ,,b", ("b", "a", "forced")),
        ("x\\,y,z", ("x,y", "z", "forced")),
        ("", ("forced",)),
        ("forced,a", ("forced", "a")),
    ],
)
def test_tags_keep_order_merge_forced_tags_and_honour_escapes(
    declared: str, expected: tuple[str, ...]
) -> None:
    policy = dataclasses.replace(POLICY, tags=("forced",))

    (s,) = derive(container(env={"SERVICE_TAGS": declared}), policy).services

    assert s.tags == expected


@pytest.mark.parametrize("value", ["true", "1", "yes", "anything"])
def test_service_ignore_ignores_the_container(value: str) -> None:
    d = derive(container(env={"SERVICE_IGNORE": value}), POLICY)

    assert d.services == ()
    assert d.skipped[0][0] == "container"


@pytest.mark.parametrize("value", ["false", "0", "no", ""])
def test_service_ignore_false_does_not_ignore(value: str) -> None:
    assert len(derive(container(env={"SERVICE_IGNORE": value}), POLICY).services) == 1


def test_label_beats_env_and_per_port_beats_generic() -> None:
    c = container(
        env={"SERVICE_NAME": "from-env", "SERVICE_80_TAGS": "port-env"},
        labels={"SERVICE_NAME": "from-label", "SERVICE_TAGS": "generic-label"},
    )

    (s,) = derive(c, POLICY).services

    assert s.name == "from-label"
    assert s.tags == ("port-env",)


def test_key_after_prefix_is_case_insensitive_but_prefix_is_not() -> None:
    c = container(env={"SERVICE_name": "lower-key", "service_NAME": "ignored"})

    assert derive(c, POLICY).services[0].name == "lower-key"


def test_invalid_name_is_reported_and_the_port_skipped() -> None:
    c = container(env={"SERVICE_NAME": "not a name!"})

    d = derive(c, POLICY)

    assert d.services == ()
    (p,) = d.problems
    assert (p.container, p.key, p.value) == ("app", "SERVICE_NAME", "not a name!")


def test_bad_meta_keys_are_dropped_and_reported_while_the_service_registers() -> None:
    c = container(env={"SERVICE_BAD.KEY": "x", "SERVICE_GOOD": "y", "SERVICE_LONG": "v" * 600})

    d = derive(c, POLICY)

    assert dict(d.services[0].meta) == {"good": "y", "registrator_host": "host1"}
    assert {p.key for p in d.problems} == {"SERVICE_BAD.KEY", "SERVICE_LONG"}


def test_meta_is_capped_at_consuls_64_pairs_including_the_ownership_mark() -> None:
    env = {f"SERVICE_K{i:03d}": "v" for i in range(70)}

    d = derive(container(env=env), POLICY)

    assert len(d.services[0].meta) == 64
    assert len(d.problems) == 7


def test_stopped_container_has_no_services() -> None:
    assert derive(container(running=False), POLICY).services == ()


def test_derivation_is_deterministic_whatever_the_declaration_order() -> None:
    env = {"SERVICE_B": "2", "SERVICE_A": "1", "SERVICE_TAGS": "x"}
    reversed_env = dict(reversed(list(env.items())))

    assert derive(container(env=env), POLICY) == derive(container(env=reversed_env), POLICY)


@pytest.mark.parametrize(
    ("required", "labels", "registered"),
    [
        ("team", {"team": "a"}, True),
        ("team", {}, False),
        ("team=a", {"team": "a"}, True),
        ("team=a", {"team": "b"}, False),
        ("team=", {"team": ""}, True),
    ],
)
def test_require_label(required: str, labels: dict[str, str], registered: bool) -> None:
    policy = dataclasses.replace(POLICY, require_label=required)

    assert bool(derive(container(labels=labels), policy).services) is registered
