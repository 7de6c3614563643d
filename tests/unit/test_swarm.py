"""Swarm tasks: how a task container is read, derived, and followed through service updates."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from loguru import logger

from registrator.app.explain import ConsulView, report
from registrator.core.derive import derive
from registrator.core.events import ContainerEvent, Happened, ServiceUpdate
from registrator.core.model import (
    Binding,
    Container,
    ContainerID,
    NetworkAddress,
    Port,
    ServiceID,
    SwarmTask,
)
from registrator.core.policy import Policy
from registrator.docker.events import event_from_docker
from registrator.docker.inspect import container_from_inspect, swarm_task
from registrator.runtime.daemon import Daemon
from registrator.runtime.known import KnownContainers
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.startup import reconciler_for
from registrator.runtime.work import Pending
from tests.support import load_fixture
from tests.unit.fakes import FakeConsul, FakeDocker

POLICY = Policy(hostname="node1", advertise_address="192.0.2.10")
TASK = SwarmTask(service_id="svc1", service_name="web", task_id="t1", slot="2", service_labels={})


def task(
    *,
    labels: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    service_labels: dict[str, str] | None = None,
    networks: dict[str, str] | None = None,
    ingress: tuple[str, ...] = ("ingress",),
    ports: tuple[Port, ...] = (Port(80, "tcp"),),
) -> Container:
    swarm = dataclasses.replace(TASK, service_labels=service_labels, ingress=ingress)
    return Container(
        id=ContainerID("c1"),
        name="web.2.t1",
        image="registry.example/team/nginx:1.25",
        env=env or {},
        labels=labels or {},
        ports=ports,
        networks={
            name: NetworkAddress(ipv4=address)
            for name, address in (
                {"ingress": "10.0.0.7", "backend": "10.0.1.7"} if networks is None else networks
            ).items()
        },
        swarm=swarm,
    )


def test_a_captured_task_container_is_read_with_its_service_task_and_slot() -> None:
    c = container_from_inspect(load_fixture("inspect-swarm-task.json"))

    assert c.swarm is not None
    assert (c.swarm.service_name, c.swarm.slot) == ("web", "1")
    assert c.swarm.service_id == c.labels["com.docker.swarm.service.id"]
    assert c.swarm.task_id == c.labels["com.docker.swarm.task.id"]
    assert c.swarm.service_labels is None  # the engine adds them, on a manager
    assert set(c.networks) == {"ingress", "swnet1"}


@pytest.mark.parametrize(
    ("labels", "slot"),
    [
        ({"com.docker.swarm.task.name": "web.12.t1"}, "12"),
        ({"com.docker.swarm.task.name": "web.n0de1d.t1"}, ""),  # a global service's task
        ({}, ""),
    ],
)
def test_the_slot_is_the_number_after_the_service_name(labels: dict[str, str], slot: str) -> None:
    ids = {
        "com.docker.swarm.service.id": "svc1",
        "com.docker.swarm.service.name": "web",
        "com.docker.swarm.task.id": "t1",
    }
    found = swarm_task({**ids, **labels})
    assert found is not None
    assert found.slot == slot


def test_a_plain_container_is_no_task() -> None:
    assert swarm_task({"com.docker.swarm.service.name": "web"}) is None
    assert container_from_inspect(load_fixture("inspect-web-published.json")).swarm is None


def test_a_task_is_named_after_its_service_at_its_overlay_address_and_container_port() -> None:
    (service,) = derive(task(), POLICY).services

    assert (service.name, service.address, service.port) == ("web", "10.0.1.7", 80)
    assert service.id == "node1:web.2.t1:80"
    assert dict(service.meta) == {
        "registrator_host": "node1",
        "swarm_service": "web",
        "swarm_slot": "2",
        "swarm_task": "t1",
    }


def test_a_port_published_in_host_mode_follows_the_published_port_rule() -> None:
    published = (Port(80, "tcp", (Binding("0.0.0.0", 8080),)),)

    (service,) = derive(task(ports=published, networks={"bridge": "172.17.0.3"}), POLICY).services

    assert (service.address, service.port) == ("192.0.2.10", 8080)


@pytest.mark.parametrize(
    ("service_labels", "env", "labels", "tags"),
    [
        ({"SERVICE_TAGS": "svc"}, {}, {}, ("svc",)),
        ({"SERVICE_TAGS": "svc"}, {"SERVICE_TAGS": "env"}, {}, ("env",)),
        ({"SERVICE_TAGS": "svc"}, {}, {"SERVICE_TAGS": "label"}, ("label",)),
        # a per-port key beats a generic one whatever its source
        ({"SERVICE_80_TAGS": "svc"}, {}, {"SERVICE_TAGS": "label"}, ("svc",)),
        ({"SERVICE_80_TAGS": "svc"}, {"SERVICE_80_TAGS": "env"}, {}, ("env",)),
    ],
)
def test_service_labels_rank_below_the_containers_own_keys_at_equal_specificity(
    service_labels: dict[str, str],
    env: dict[str, str],
    labels: dict[str, str],
    tags: tuple[str, ...],
) -> None:
    (service,) = derive(
        task(service_labels=service_labels, env=env, labels=labels), POLICY
    ).services

    assert service.tags == tags


def test_service_name_and_ignore_come_from_any_source() -> None:
    named = task(service_labels={"SERVICE_NAME": "frontend"})
    ignored = task(service_labels={"SERVICE_IGNORE": "true"})

    assert [s.name for s in derive(named, POLICY).services] == ["frontend"]
    assert derive(ignored, POLICY).services == ()


def test_a_bad_service_label_is_one_problem_naming_the_service_key_and_value() -> None:
    d = derive(task(service_labels={"SERVICE_NAME": "not a name!"}), POLICY)

    assert d.services == ()
    [problem] = d.problems
    assert problem.key == "SERVICE_NAME on Swarm service web"
    assert problem.value == "not a name!"


def test_on_a_worker_the_containers_own_keys_still_count() -> None:
    (service,) = derive(task(service_labels=None, labels={"SERVICE_TAGS": "own"}), POLICY).services

    assert service.tags == ("own",)


def test_the_routing_mesh_is_never_the_address_and_a_choice_is_honoured() -> None:
    two = {"ingress": "10.0.0.7", "backend": "10.0.1.7", "front": "10.0.2.7"}

    (chosen,) = derive(task(networks=two, env={"SERVICE_NETWORK": "front"}), POLICY).services
    by_option = derive(task(networks=two), dataclasses.replace(POLICY, network="backend"))
    mesh = derive(task(networks=two, env={"SERVICE_NETWORK": "ingress"}), POLICY)

    assert chosen.address == "10.0.2.7"
    assert [s.address for s in by_option.services] == ["10.0.1.7"]
    assert mesh.services == ()
    assert "no address on this network (on: backend, front)" in mesh.problems[0].reason


def test_a_task_on_the_routing_mesh_only_is_skipped_with_a_line_that_says_why() -> None:
    d = derive(task(networks={"ingress": "10.0.0.7"}), POLICY)

    assert d.services == ()
    [problem] = d.problems
    assert (problem.key, problem.value) == ("network", "ingress")
    assert "no network but the routing mesh (ingress)" in problem.reason
    assert d.skipped == (("80/tcp", "a Swarm task on no network but the routing mesh (ingress)"),)


def test_a_task_without_any_address_is_skipped_with_a_line_too() -> None:
    d = derive(task(networks={"none": ""}, ingress=()), POLICY)

    assert d.services == ()
    assert "without an address on any network (network mode default)" in d.problems[0].reason


def test_a_service_name_that_is_no_dns_label_is_made_one() -> None:
    dotted = dataclasses.replace(TASK, service_name="shop.web")
    c = dataclasses.replace(task(), swarm=dataclasses.replace(dotted, service_labels={}))

    assert [s.name for s in derive(c, POLICY).services] == ["shop-web"]


def _raw_service(action: str) -> dict[str, Any]:
    return {"Type": "service", "Action": action, "Actor": {"ID": "svc1", "Attributes": {}}}


def test_a_service_update_is_an_event_and_create_or_remove_are_not() -> None:
    assert event_from_docker(_raw_service("update")) == ServiceUpdate("svc1")
    assert event_from_docker(_raw_service("create")) is None
    assert event_from_docker(_raw_service("remove")) is None


class NoEvents:
    def events(self) -> None:
        raise AssertionError("the step tests never subscribe")


def _daemon() -> tuple[Daemon, FakeDocker, FakeConsul]:
    docker, consul = FakeDocker(), FakeConsul()
    reconciler = reconciler_for(docker, consul, POLICY, retry=RetryPolicy.without_waits())
    return Daemon(reconciler, NoEvents(), retry=RetryPolicy.without_waits()), docker, consul  # type: ignore[arg-type]


def test_a_service_update_re_derives_its_tasks_here_and_only_those() -> None:
    daemon, docker, consul = _daemon()
    docker.add(task(service_labels={"SERVICE_TAGS": "blue"}))
    docker.add(Container(ContainerID("plain"), "plain", "img", ports=(Port(80, "tcp"),)))
    work = Pending()
    work.add(ContainerEvent(ContainerID("c1"), Happened.STARTED))
    daemon.step(work)
    docker.add(task(service_labels={"SERVICE_TAGS": "green"}))
    docker.inspected.clear()

    work = Pending()
    work.add(ServiceUpdate("svc1"))
    daemon.step(work)

    assert docker.inspected == ["c1"]
    assert consul.registered[ServiceID("node1:web.2.t1:80")].tags == ("green",)


def test_an_update_of_a_service_without_tasks_here_costs_nothing() -> None:
    daemon, docker, consul = _daemon()
    work = Pending()
    work.add(ServiceUpdate("elsewhere"))

    assert work
    assert not daemon.step(work)
    assert (docker.inspected, consul.reads, consul.writes) == ([], [], 0)


@pytest.mark.parametrize(
    ("swarm", "lines"),
    [
        (
            dataclasses.replace(TASK, service_labels={"SERVICE_TAGS": "blue"}),
            [
                "swarm service web (svc1), slot 2, task t1",
                "swarm service labels: SERVICE_TAGS=blue",
            ],
        ),
        (
            dataclasses.replace(TASK, slot="", service_labels=None),
            [
                "swarm service web (svc1), no slot (a global service), task t1",
                "swarm service labels: not read: only a Swarm manager can read them",
            ],
        ),
    ],
)
def test_explain_shows_the_swarm_service_slot_and_task(swarm: SwarmTask, lines: list[str]) -> None:
    c = dataclasses.replace(task(), swarm=swarm)

    text = report(c, derive(c, POLICY), policy=POLICY, consul=ConsulView(owned={}))

    assert text.splitlines()[1:3] == lines


def test_on_a_worker_the_missing_service_labels_are_logged_once() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    try:
        known = KnownContainers(POLICY)
        for number in range(3):
            worker_task = task(service_labels=None)
            known.learn(dataclasses.replace(worker_task, id=ContainerID(f"c{number}")))
        known.learn(task(service_labels={}))
    finally:
        logger.remove(sink)

    assert lines == ["swarm.service_labels_unavailable"]
