"""The worker: coalescing, what remains owed after a failure, and the loop itself (run, stop)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from harness import wait_until
from registrator.core.events import ContainerEvent
from registrator.core.model import ContainerID, Health, ServiceID
from registrator.core.policy import Policy
from registrator.runtime.daemon import Daemon
from registrator.runtime.observer import NullObserver
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.startup import reconciler_for
from registrator.runtime.work import FullPass, Pending, Timer
from tests.support import docker_event, running, web
from tests.unit.fakes import FakeClock, FakeConsul, FakeDocker, FakeEvents


class NoEvents:
    def events(self) -> None:
        raise AssertionError("the step tests never subscribe")


def make() -> tuple[Daemon, FakeDocker, FakeConsul]:
    docker, consul = FakeDocker(), FakeConsul()
    reconciler = reconciler_for(docker, consul, Policy("h"), retry=RetryPolicy.without_waits())
    daemon = Daemon(reconciler, NoEvents(), retry=RetryPolicy.without_waits())  # type: ignore[arg-type]
    return daemon, docker, consul


def test_work_coalesces_containers_and_full_requests() -> None:
    work = Pending()
    for item in (ContainerID("a"), ContainerID("a"), FullPass.AGENT_CHECK, ContainerID("b")):
        work.add(item)
    work.add(FullPass.RESYNC | FullPass.REINSPECT)

    assert work.full == FullPass.RESYNC | FullPass.REINSPECT
    assert work.containers == {"a", "b"}


@pytest.mark.parametrize(
    ("events", "exited"),
    [
        ([docker_event("a", "die", 1)], {"a": 1}),
        (
            [
                docker_event("a", "die", 0),
                docker_event("a", "disconnect"),
            ],
            {"a": 0},
        ),
        ([docker_event("a", "die", 0), docker_event("a", "start")], {}),
        (
            [docker_event("a", "start"), docker_event("a", "die", 2)],
            {"a": 2},
        ),
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
        work.add(docker_event("a", action, 0 if action == "die" else None))

    assert work.containers == {"a"}
    assert ("a" in work.network_only) is network_only


def test_a_failed_step_owes_a_full_reconcile_that_completes_the_work() -> None:
    daemon, docker, consul = make()
    docker.add(web())
    consul.down = True

    owed = daemon.step(Pending(containers={ContainerID("c1")}))

    assert owed.full == FullPass.RESYNC
    consul.down = False
    assert not daemon.step(owed)
    assert list(consul.registered) == ["h:web:80"]
    assert daemon.reconciled.is_set()


def test_a_rename_during_an_outage_leaves_no_stale_service() -> None:
    daemon, docker, consul = make()
    docker.add(web(name="old"))
    daemon.step(Pending(full=FullPass.RESYNC))
    docker.add(web(name="new"))
    consul.down = True

    owed = daemon.step(Pending(containers={ContainerID("c1")}))
    consul.down = False
    daemon.step(owed)

    assert list(consul.registered) == ["h:new:80"]


def test_agent_check_restores_an_emptied_agent_without_asking_docker() -> None:
    daemon, docker, consul = make()
    docker.add(web())
    daemon.step(Pending(full=FullPass.RESYNC))
    consul.registered.clear()
    inspected = len(docker.inspected)

    daemon.step(Pending(full=FullPass.AGENT_CHECK))

    assert list(consul.registered) == [ServiceID("h:web:80")]
    assert len(docker.inspected) == inspected


def test_agent_check_with_nothing_changed_writes_nothing() -> None:
    daemon, docker, consul = make()
    docker.add(dataclasses.replace(web(), paused=True))
    daemon.step(Pending(full=FullPass.RESYNC))
    writes = consul.writes

    daemon.step(Pending(full=FullPass.AGENT_CHECK))

    assert consul.writes == writes
    assert consul.registered[ServiceID("h:web:80")].maintenance


@pytest.mark.parametrize(
    "full", [FullPass.RESYNC, FullPass.AGENT_CHECK, FullPass.AGENT_CHECK | FullPass.REFRESH]
)
def test_an_event_batched_with_a_timer_is_not_lost(full: FullPass) -> None:
    daemon, docker, consul = make()
    docker.add(dataclasses.replace(web(), health=Health("starting")))
    daemon.step(Pending(full=FullPass.RESYNC))
    docker.add(dataclasses.replace(web(), health=Health("healthy", "ok")))

    daemon.step(Pending(full=full, containers={ContainerID("c1")}))

    (check,) = consul.registered[ServiceID("h:web:80")].checks
    assert (check.status, check.output) == ("passing", "ok")


# -- the loop itself: run() on a thread, request_stop() -----------------------------------


def looping(docker: FakeDocker, consul: FakeConsul, **options: Any) -> tuple[Daemon, FakeEvents]:
    events = FakeEvents()
    reconciler = reconciler_for(docker, consul, Policy("h"), retry=RetryPolicy.without_waits())
    return Daemon(reconciler, events, retry=RetryPolicy.without_waits(), **options), events


def test_the_loop_registers_what_runs_then_follows_events_until_asked_to_stop(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    docker.add(web())
    daemon, events = looping(docker, consul)

    with running(daemon) as thread:
        assert daemon.reconciled.wait(timeout=15)
        assert list(consul.registered) == ["h:web:80"]
        docker.add(web("d", "api"))
        events.push(docker_event("d", "start"))
        wait_until(lambda: "h:api:80" in consul.registered, what="the started container")
        del docker.containers_by_id[ContainerID("c1")]
        events.push(docker_event("c1", "die", exit_code=0))
        wait_until(lambda: "h:web:80" not in consul.registered, what="the dead one gone")

    assert not thread.is_alive()
    assert events.closed.is_set()  # closing the stream is what unblocked the watcher
    assert list(consul.registered) == ["h:api:80"]


class Failures(NullObserver):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def failed(self, kind: str) -> None:
        self.seen.append(kind)


def test_an_event_that_fails_owes_the_worker_a_full_pass(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    failures = Failures()
    daemon, events = looping(docker, consul, observer=failures)

    with running(daemon):
        assert daemon.reconciled.wait(timeout=15)
        docker.add(web())
        consul.down = True
        events.push(docker_event("c1", "start"))
        wait_until(lambda: failures.seen, what="the event's failed reconcile")
        consul.down = False
        wait_until(lambda: "h:web:80" in consul.registered, what="the owed pass")

    assert failures.seen[0] == "reconcile.failed"


def test_the_agent_check_runs_when_the_daemons_clock_reaches_it(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    """A worker asleep with its timer due is woken by its next work: here a lane's, after a
    `kill` (a drain may have started); the timer is read on the daemon's clock."""
    docker.add(web())
    clock = FakeClock()
    daemon, events = looping(docker, consul, agent_check_interval=60, clock=clock)

    with running(daemon):
        assert daemon.reconciled.wait(timeout=15)
        consul.registered.clear()  # the agent restarted empty
        clock.advance(60)
        events.push(docker_event("gone", "kill", signal=1))
        wait_until(lambda: "h:web:80" in consul.registered, what="the agent check's repair")

    assert docker.inspected.count(ContainerID("c1")) == 1  # the start-up's: the check reads none


def test_timers_fire_on_their_clock_and_an_interval_of_0_never_does() -> None:
    clock = FakeClock(now=100.0)
    timer, never = Timer(30, clock=clock), Timer(0, clock=clock)

    clock.advance(29)
    assert not timer.fire()
    clock.advance(1)
    assert timer.fire()
    assert not timer.fire()  # due again 30 s after it fired
    assert timer.due == 160.0
    clock.advance(1e9)
    assert not never.fire()


def test_the_daemon_names_every_thread_it_runs_beside_the_worker(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    beats: list[str] = []
    plain, _ = looping(docker, consul)
    leased, _ = looping(
        docker, consul, heartbeat=lambda: beats.append("beat"), heartbeat_interval=1
    )

    lanes = [f"events-{n}" for n in range(4)]
    reaping, _ = looping(docker, consul, reaper=lambda: None)
    assert [t.name for t in plain.threads()] == ["docker-events", *lanes]
    assert [t.name for t in leased.threads()] == ["docker-events", *lanes, "heartbeat"]
    assert [t.name for t in reaping.threads()] == ["docker-events", *lanes, "catalog-reaper"]
    assert not any(t.is_alive() for t in leased.threads())  # built, not started
