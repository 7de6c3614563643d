"""The worker loop's step: coalescing, and what remains owed after a failure."""

from __future__ import annotations

import dataclasses

import pytest

from registrator.core.events import ContainerEvent
from registrator.core.model import Binding, Container, ContainerID, Health, Port, ServiceID
from registrator.core.policy import Policy
from registrator.docker.events import HAPPENED
from registrator.runtime.daemon import Daemon
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.work import FullPass, Pending
from tests.unit.fakes import FakeConsul, FakeDocker


class NoEvents:
    def events(self) -> None:
        raise AssertionError("the step tests never subscribe")


def make() -> tuple[Daemon, FakeDocker, FakeConsul]:
    docker, consul = FakeDocker(), FakeConsul()
    reconciler = Reconciler(docker, consul, Policy("h"), retry=RetryPolicy.without_waits())
    daemon = Daemon(reconciler, NoEvents(), retry=RetryPolicy.without_waits())  # type: ignore[arg-type]
    return daemon, docker, consul


def web(name: str = "web", cid: str = "c") -> Container:
    return Container(ContainerID(cid), name, "img", ports=(Port(80, "tcp", (Binding("", 1),)),))


def test_work_coalesces_containers_and_full_requests() -> None:
    work = Pending()
    for item in (ContainerID("a"), ContainerID("a"), FullPass(docker=False), ContainerID("b")):
        work.add(item)
    work.add(FullPass(reinspect=True))

    assert work.full == FullPass(docker=True, reinspect=True)
    assert work.containers == {"a", "b"}


def _Event(
    container: ContainerID, action: str, exit_code: int | None = None, signal: int | None = None
) -> ContainerEvent:
    """The event the Docker adapter makes of Docker's `action`."""
    return ContainerEvent(container, HAPPENED[action], exit_code, signal)


@pytest.mark.parametrize(
    ("events", "exited"),
    [
        ([_Event(ContainerID("a"), "die", 1)], {"a": 1}),
        ([_Event(ContainerID("a"), "die", 0), _Event(ContainerID("a"), "disconnect")], {"a": 0}),
        ([_Event(ContainerID("a"), "die", 0), _Event(ContainerID("a"), "start")], {}),
        ([_Event(ContainerID("a"), "start"), _Event(ContainerID("a"), "die", 2)], {"a": 2}),
    ],
)
def test_work_remembers_containers_whose_last_lifecycle_event_was_die(
    events: list[ContainerEvent], exited: dict[str, int]
) -> None:
    work = Pending()
    for event in events:
        work.add(event)

    assert work.containers == {"a"}
    assert work.exited == exited


@pytest.mark.parametrize(
    ("actions", "network_only"),
    [
        (["connect"], True),
        (["connect", "disconnect"], True),
        (["connect", "start"], False),
        (["start", "connect"], False),
        (["die", "disconnect"], False),
    ],
)
def test_work_knows_containers_with_only_network_events(
    actions: list[str], network_only: bool
) -> None:
    work = Pending()
    for action in actions:
        work.add(_Event(ContainerID("a"), action, 0 if action == "die" else None))

    assert work.containers == {"a"}
    assert ("a" in work.network_only) is network_only


def test_a_failed_step_owes_a_full_reconcile_that_completes_the_work() -> None:
    daemon, docker, consul = make()
    docker.add(web())
    consul.down = True

    owed = daemon.step(Pending(containers={ContainerID("c")}))

    assert owed.full == FullPass()
    consul.down = False
    assert not daemon.step(owed)
    assert list(consul.registered) == ["h:web:80"]
    assert daemon.reconciled.is_set()


def test_a_rename_during_an_outage_leaves_no_stale_service() -> None:
    daemon, docker, consul = make()
    docker.add(web("old"))
    daemon.step(Pending(full=FullPass()))
    docker.add(web("new"))
    consul.down = True

    owed = daemon.step(Pending(containers={ContainerID("c")}))
    consul.down = False
    daemon.step(owed)

    assert list(consul.registered) == ["h:new:80"]


def test_agent_check_restores_an_emptied_agent_without_asking_docker() -> None:
    daemon, docker, consul = make()
    docker.add(web())
    daemon.step(Pending(full=FullPass()))
    consul.registered.clear()
    inspected = len(docker.inspected)

    daemon.step(Pending(full=FullPass(docker=False)))

    assert list(consul.registered) == [ServiceID("h:web:80")]
    assert len(docker.inspected) == inspected


def test_agent_check_with_nothing_changed_writes_nothing() -> None:
    daemon, docker, consul = make()
    docker.add(dataclasses.replace(web(), paused=True))
    daemon.step(Pending(full=FullPass()))
    writes = consul.writes

    daemon.step(Pending(full=FullPass(docker=False)))

    assert consul.writes == writes
    assert consul.registered[ServiceID("h:web:80")].maintenance


@pytest.mark.parametrize(
    "full", [FullPass(), FullPass(docker=False), FullPass(docker=False, refresh=True)]
)
def test_an_event_batched_with_a_timer_is_not_lost(full: FullPass) -> None:
    daemon, docker, consul = make()
    docker.add(dataclasses.replace(web(), health=Health("starting")))
    daemon.step(Pending(full=FullPass()))
    docker.add(dataclasses.replace(web(), health=Health("healthy", "ok")))

    daemon.step(Pending(full=full, containers={ContainerID("c")}))

    (check,) = consul.registered[ServiceID("h:web:80")].checks
    assert (check.status, check.output) == ("passing", "ok")


def test_a_drain_started_on_a_lane_wakes_the_worker_to_set_its_alarm() -> None:
    """The worker may sleep with no deadline at all; the drain's deadline is its to keep."""
    daemon, docker, _ = make()
    docker.add(dataclasses.replace(web(), stop_timeout=0))
    daemon._reconciler.full()
    assert daemon._timeout(Pending()) is None
    work = Pending()
    work.add(_Event(ContainerID("c"), "kill", signal=15))

    daemon._handle_events(work)

    assert daemon._queue.get_nowait() is None  # the wake-up
    timeout = daemon._timeout(Pending())
    assert timeout is not None
    assert 0 < timeout <= 5
