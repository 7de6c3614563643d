"""Podman's compat API, captured from Podman 4.3.1 (tests/fixtures/podman-*), made Docker's."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from registrator.app.explain import ConsulView, report
from registrator.core.derive import derive
from registrator.core.events import ContainerEvent, Happened
from registrator.core.model import Container, ContainerID
from registrator.docker import podman
from registrator.docker.engine import event_filters
from registrator.docker.events import event_from_docker
from registrator.docker.inspect import container_from_inspect
from registrator.docker.pods import LIBPOD, Member, PodReader, member_from_inspect, port_owner
from tests.support import FIXTURES, POLICY, load_fixture

INTERNAL = dataclasses.replace(POLICY, internal=True)
POD = load_fixture("podman-pod.json")
MEMBERS = {c["Name"]: c["Id"] for c in POD["Containers"]}
INFRA = POD["InfraContainerID"]
#: the captured pod's containers, by their names in it
FIXTURE_OF = {
    "pod1-web": "podman-pod-web.json",
    "pod1-side": "podman-pod-side.json",
    "pod1-exp": "podman-pod-exposing.json",
    "94ce5ef3d603-infra": "podman-pod-infra.json",
}


def captured_events() -> list[dict[str, Any]]:
    lines = (FIXTURES / "podman-events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def translated(action: str, name: str | None = None) -> list[ContainerEvent]:
    """The events of the captured stream with this action (and container name), translated."""
    found = []
    for raw in captured_events():
        attributes = raw["Actor"]["Attributes"]
        if raw["Action"] == action and name in {None, attributes.get("name")}:
            event = event_from_docker(podman.docker_event(raw))
            assert isinstance(event, ContainerEvent | None)
            found.extend([event] if event is not None else [])
    return found


def test_podman_is_told_from_docker_by_its_version() -> None:
    assert podman.is_podman(load_fixture("podman-version.json"))
    assert not podman.is_podman({"Components": [{"Name": "Engine", "Version": "20.10.24"}]})
    assert not podman.is_podman({})


def test_the_event_filter_names_podmans_die_and_destroy_too() -> None:
    docker_names = set(json.loads(event_filters())["event"])
    podman_names = set(json.loads(event_filters(on_podman=True))["event"])

    assert podman_names - docker_names == {"died", "remove"}
    assert {"die", "destroy"} <= docker_names


def test_a_die_keeps_its_exit_code_and_a_remove_is_a_destroy() -> None:
    dies = translated("die", "pub-any")
    removes = translated("remove")

    assert [(e.happened, e.exit_code) for e in dies] == [(Happened.EXITED, 137)]
    assert removes
    assert {e.happened for e in removes} == {Happened.REMOVED}


def test_an_exit_code_only_in_container_exit_code_is_read() -> None:
    (raw,) = [e for e in captured_events() if e["Action"] == "die"][:1]
    del raw["Actor"]["Attributes"]["exitCode"]
    raw["Actor"]["Attributes"]["containerExitCode"] = "3"

    event = event_from_docker(podman.docker_event(raw))

    assert isinstance(event, ContainerEvent)
    assert event.exit_code == 3


def test_a_network_event_names_its_container_by_its_actor() -> None:
    (connect,) = translated("connect")
    (disconnect,) = translated("disconnect")

    assert connect.happened is Happened.CONNECTED
    assert disconnect.container == connect.container
    assert connect.container.startswith("e2d5853771")


def test_bare_health_status_events_each_ask_for_an_inspect() -> None:
    events = translated("health_status")

    assert len(events) >= 2
    assert {e.happened for e in events} == {Happened.HEALTH_CHANGED}


def test_a_kill_carries_no_signal_so_it_never_starts_a_drain() -> None:
    kills = translated("kill")

    assert kills
    assert {e.signal for e in kills} == {None}


@pytest.mark.parametrize("action", ["create", "init", "cleanup", "exec_died"])
def test_podmans_other_actions_are_dropped(action: str) -> None:
    assert translated(action) == []


def test_a_binding_to_every_address_registers_the_advertised_address() -> None:
    container = container_from_inspect(load_fixture("podman-published-any.json"))

    (service,) = derive(container, POLICY).services

    assert container.ports[0].bindings[0].host_ip == ""
    assert (service.address, service.port) == ("10.0.0.5", 46477)


def test_a_podman_healthcheck_is_read_as_dockers() -> None:
    container = container_from_inspect(load_fixture("podman-healthcheck.json"))

    assert container.health is not None
    assert container.health.status == "healthy"


def test_host_network_without_networks_is_host_mode() -> None:
    container = container_from_inspect(load_fixture("podman-host-net.json"))

    assert (container.network_mode, dict(container.networks)) == ("host", {})


def members() -> list[Member]:
    image = load_fixture("podman-image-exposing.json")
    found = []
    for name, file in FIXTURE_OF.items():
        data = load_fixture(file)
        exposing = name == "pod1-exp"
        found.append(
            member_from_inspect(
                data, infra=name.endswith("-infra"), image=image if exposing else None
            )
        )
    return found


@pytest.mark.parametrize(
    ("port", "owner"),
    [
        ("80/tcp", "pod1-web"),  # the only one with a SERVICE_NAME
        ("9000/tcp", "pod1-side"),  # SERVICE_9000_NAME
        ("8080/tcp", "pod1-exp"),  # its image's EXPOSE
    ],
)
def test_each_port_of_a_pod_has_one_owner(port: str, owner: str) -> None:
    assert port_owner(port, members()) == MEMBERS[owner]


def test_a_port_nobody_claims_among_several_is_nobodys() -> None:
    unnamed = [dataclasses.replace(m, keys=m.keys - {"NAME"}) for m in members()]

    assert port_owner("80/tcp", unnamed) is None
    assert port_owner("9000/tcp", unnamed) == MEMBERS["pod1-side"]


def test_a_declaration_beats_an_expose_and_ties_go_by_name() -> None:
    a, b = (Member(ContainerID(n), n, False, frozenset(), frozenset({"80/tcp"})) for n in "ba")
    c = Member(ContainerID("c"), "c", False, frozenset({"80_NAME"}), frozenset())

    assert port_owner("80/tcp", [a, b]) == "a"
    assert port_owner("80/tcp", [a, b, c]) == "c"


def test_a_pod_whose_labels_carry_service_keys_registers_its_infra() -> None:
    infra = Member(ContainerID("i"), "i", True, frozenset({"NAME"}), frozenset({"80/tcp"}))
    app = Member(ContainerID("a"), "a", False, frozenset(), frozenset())

    assert port_owner("80/tcp", [app, infra]) == "i"
    assert port_owner("80/tcp", [app, dataclasses.replace(infra, keys=frozenset())]) == "a"


class CapturedPodman:
    """libpod's and the compat API's answers about the captured pod, as the engine reads them."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {f"{LIBPOD}/pods/{POD['Id']}/json": POD}
        for file in FIXTURE_OF.values():
            data = load_fixture(file)
            self.answers[f"/containers/{data['Id']}/json"] = data
            self.answers[f"{LIBPOD}/containers/{data['Id']}/json"] = {"Pod": POD["Id"]}
        image = load_fixture("podman-image-exposing.json")
        self.answers[f"/images/{image['Id']}/json"] = image

    def __call__(self, path: str, *, missing_ok: bool = False) -> Any:
        assert missing_ok
        return self.answers.get(path)


def inspected(name: str) -> Container:
    """What the engine makes of a captured pod member: its peer attached, its ports its own."""
    get = CapturedPodman()
    found = container_from_inspect(get(f"/containers/{MEMBERS[name]}/json", missing_ok=True))
    if found.network_peer_id is not None:
        peer = container_from_inspect(get(f"/containers/{INFRA}/json", missing_ok=True))
        found = dataclasses.replace(found, network_peer=peer)
    return PodReader(get).with_own_ports(found)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pod1-web", [("h:pod1-web:80", "web", "127.0.0.1", 43571)]),
        ("pod1-side", [("h:pod1-side:9000", "side", "127.0.0.1", 40651)]),
        ("94ce5ef3d603-infra", []),
    ],
)
def test_a_pod_registers_each_published_port_once(
    name: str, expected: list[tuple[str, str, str, int]]
) -> None:
    services = derive(inspected(name), POLICY).services

    assert [(s.id, s.name, s.address, s.port) for s in services] == expected


def test_an_exposed_port_of_a_pod_registers_with_internal_at_the_pods_address() -> None:
    services = derive(inspected("pod1-exp"), INTERNAL).services

    assert [(s.id, s.address, s.port) for s in services] == [
        ("h:pod1-exp:8080", "10.88.0.10", 8080)
    ]


def test_outside_a_pod_nothing_changes() -> None:
    plain = container_from_inspect(load_fixture("podman-published-any.json"))
    get = CapturedPodman()
    get.answers[f"{LIBPOD}/containers/{plain.id}/json"] = {"Pod": ""}

    assert PodReader(get).with_own_ports(plain) == plain


def test_explain_says_a_podman_container_is_not_drained_and_why() -> None:
    container = inspected("pod1-web")
    derivation = derive(container, POLICY)

    text = report(
        container, derivation, policy=POLICY, consul=ConsulView(), limitations=podman.LIMITATIONS
    )
    on_docker = report(container, derivation, policy=POLICY, consul=ConsulView())

    assert f"on its stop signal: not drained: {podman.LIMITATIONS['drain']}" in text
    assert f"engine: {podman.LIMITATIONS['healthcheck']}" in text
    assert "drained (maintenance)" not in text
    assert "drained (maintenance)" in on_docker
