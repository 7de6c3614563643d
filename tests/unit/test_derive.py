"""The pure derivation: a container's inspect data -> the services it should have."""

from __future__ import annotations

import dataclasses

import pytest

from registrator.core.derive import default_name, derive
from registrator.core.model import Binding, Container, ContainerID, Port
from registrator.docker.inspect import container_from_inspect
from tests.support import POLICY, load_fixture


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

    assert s.id == "h:web-published:80"
    assert s.name == "web"
    assert s.address == "10.0.0.5"
    assert s.port == c.ports[0].bindings[0].host_port
    assert s.tags == ("a", "b,c")
    assert dict(s.meta) == {"region": "eu", "registrator_host": "h"}


def test_captured_two_port_container_suffixes_names_and_skips_exposed_only() -> None:
    c = container_from_inspect(load_fixture("inspect-two-ports.json"))

    d = derive(c, POLICY)

    assert [(s.id, s.name, s.address) for s in d.services] == [
        ("h:two-ports:80", "busybox-80", "10.0.0.5"),
        ("h:two-ports:8080", "admin", "127.0.0.1"),
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

    assert dict(d.services[0].meta) == {"good": "y", "registrator_host": "h"}
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


def two_ports(**changes: object) -> Container:
    ports = (Port(80, "tcp", (Binding("", 8080),)), Port(443, "tcp", (Binding("", 8443),)))
    return container(ports=ports, **changes)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, ["nginx-80", "nginx-443"]),
        ({"SERVICE_NAME": "web"}, ["web-80", "web-443"]),
        ({"SERVICE_80_NAME": "http", "SERVICE_443_NAME": "https"}, ["http", "https"]),
        ({"SERVICE_NAME": "web", "SERVICE_443_NAME": "tls"}, ["web-80", "tls"]),
    ],
)
def test_names_with_several_ports(env: dict[str, str], names: list[str]) -> None:
    assert [s.name for s in derive(two_ports(env=env), POLICY).services] == names


def test_every_port_of_the_container_counts_for_the_suffix_as_in_gliderlabs() -> None:
    c = container(ports=(*container().ports, Port(9000, "tcp")))

    assert [s.name for s in derive(c, POLICY).services] == ["nginx-80"]


@pytest.mark.parametrize(
    ("c", "env", "ids"),
    [
        ("one", {}, ["h:app:80"]),
        ("one", {"SERVICE_ID": "web-1"}, ["web-1"]),
        ("one", {"SERVICE_80_ID": "web-1"}, ["web-1"]),
        ("two", {"SERVICE_ID": "web"}, ["web-80", "web-443"]),
        ("two", {"SERVICE_80_ID": "a", "SERVICE_443_ID": "b"}, ["a", "b"]),
        ("two", {"SERVICE_ID": "web", "SERVICE_443_ID": "tls"}, ["web-80", "tls"]),
        ("udp", {}, ["h:app:53", "h:app:53:udp"]),
        ("udp", {"SERVICE_53_ID": "dns"}, ["dns", "dns:udp"]),
    ],
)
def test_service_ids(c: str, env: dict[str, str], ids: list[str]) -> None:
    udp = (Port(53, "tcp", (Binding("", 53),)), Port(53, "udp", (Binding("", 53),)))
    base = {"one": container(), "two": two_ports(), "udp": container(ports=udp)}[c]

    d = derive(dataclasses.replace(base, env=env), POLICY)

    assert [s.id for s in d.services] == ids
    assert d.problems == ()


@pytest.mark.parametrize("value", ["has space", "a/b", "x?y", "", "i" * 257])
def test_an_unusable_service_id_is_reported_and_the_default_used(value: str) -> None:
    d = derive(container(env={"SERVICE_ID": value}), POLICY)

    assert [s.id for s in d.services] == ["h:app:80"]
    assert [p.key for p in d.problems] == ["SERVICE_ID"]


def test_two_ports_declaring_the_same_id_keep_the_first_and_report_the_second() -> None:
    d = derive(two_ports(env={"SERVICE_80_ID": "same", "SERVICE_443_ID": "same"}), POLICY)

    assert [s.port for s in d.services] == [8080]
    (p,) = d.problems
    assert (p.key, p.value) == ("SERVICE_ID", "same")
    assert "443/tcp" in p.reason


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, []),
        ({"SERVICE_NAME": "web"}, ["web-80", "web-443"]),
        ({"SERVICE_443_NAME": "tls"}, ["tls"]),
        ({"SERVICE_TAGS": "x"}, []),
    ],
)
def test_explicit_registers_only_ports_with_a_name(env: dict[str, str], names: list[str]) -> None:
    explicit = dataclasses.replace(POLICY, explicit=True)

    d = derive(two_ports(env=env), explicit)

    assert [s.name for s in d.services] == names
    assert len(d.skipped) == 2 - len(names)


@pytest.mark.parametrize(
    ("required", "labels", "env", "registered"),
    [
        ("registrator", {"registrator": ""}, {}, True),
        ("registrator", {"registrator": "false"}, {}, True),
        ("registrator", {"other": "x"}, {}, False),
        ("registrator", {}, {"registrator": "yes"}, False),
        ("registrator=on", {"registrator": "on"}, {}, True),
        ("registrator=on", {"registrator": "off"}, {}, False),
        ("registrator=", {"registrator": ""}, {}, True),
        ("a.b/c=x=y", {"a.b/c": "x=y"}, {}, True),
    ],
)
def test_require_label_keeps_only_containers_carrying_it(
    required: str, labels: dict[str, str], env: dict[str, str], registered: bool
) -> None:
    policy = dataclasses.replace(POLICY, require_label=required)

    d = derive(container(labels=labels, env=env), policy)

    assert bool(d.services) is registered
    assert registered or d.skipped == (("container", f"no label {required} (--require-label)"),)


def test_a_per_port_key_for_a_port_the_container_lacks_is_reported_and_ignored() -> None:
    c = container(env={"SERVICE_8081_NAME": "typo", "SERVICE_NAME": "web"})

    d = derive(c, POLICY)

    assert [s.name for s in d.services] == ["web"]
    (p,) = d.problems
    assert (p.container, p.key, p.value) == ("app", "SERVICE_8081_NAME", "typo")


def test_a_problem_with_a_generic_key_is_reported_once_however_many_ports() -> None:
    d = derive(two_ports(env={"SERVICE_BAD.KEY": "x"}), POLICY)

    assert len(d.services) == 2
    assert [p.key for p in d.problems] == ["SERVICE_BAD.KEY"]


def test_absurdly_long_values_are_reported_shortened_and_dropped() -> None:
    long = "t" * 5000
    d = derive(container(env={"SERVICE_TAGS": f"ok,{long}", "SERVICE_NOTE": long}), POLICY)

    (s,) = d.services
    assert s.tags == ("ok",)
    assert "note" not in dict(s.meta)
    assert {p.key for p in d.problems} == {"SERVICE_TAGS", "SERVICE_NOTE"}
    assert all(len(p.value) < 300 and "5000 characters" in p.value for p in d.problems)


def test_check_keys_never_leak_into_meta_and_reserved_keys_neither() -> None:
    env = {
        "SERVICE_CHECK_HTTP": "/health",
        "SERVICE_80_CHECK_INTERVAL": "5s",
        "SERVICE_NETWORK": "bridge",
        "SERVICE_ID": "x",
        "SERVICE_VERSION": "2",
    }

    (s,) = derive(container(env=env), POLICY).services

    assert dict(s.meta) == {"version": "2", "registrator_host": "h"}


def test_per_port_ignore_leaves_the_other_ports() -> None:
    d = derive(two_ports(labels={"SERVICE_443_IGNORE": "yes"}), POLICY)

    assert [s.name for s in d.services] == ["nginx-80"]
    assert d.skipped == (("443/tcp", "SERVICE_443_IGNORE=yes"),)
