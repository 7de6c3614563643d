"""The pieces that let events be reconciled at once: the mirror of the agent, the lanes and
their hold, the service locks, and an event that comes while a full pass runs."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import pytest

from harness import wait_until
from registrator.core.model import (
    Check,
    Container,
    ContainerID,
    Service,
    ServiceID,
)
from registrator.core.plan import (
    ClearMaintenance,
    Deregister,
    Register,
    SetMaintenance,
    UpdateCheck,
)
from registrator.core.policy import Policy
from registrator.registries.consul.held import applied
from registrator.runtime.daemon import Daemon
from registrator.runtime.known import KnownContainers
from registrator.runtime.lanes import Lanes
from registrator.runtime.mirror import Mirror
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.startup import reconciler_for
from tests.support import docker_event, running, web
from tests.unit.fakes import FakeClock, FakeConsul, FakeDocker, FakeEvents

TTL = Check("service:s:ttl", "ttl", "ttl", (("TTL", "30s"),), status="passing", output="ok")


def service(sid: str = "h:web:80", **changes: object) -> Service:
    return dataclasses.replace(Service(ServiceID(sid), "web", "10.0.0.1", 80), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "actions",
    [
        [Register(service(checks=(TTL,)))],
        [Register(service(checks=(TTL,))), UpdateCheck(ServiceID("h:web:80"), TTL)],
        [Register(service()), SetMaintenance(ServiceID("h:web:80"), "container paused")],
        [Register(service()), SetMaintenance(ServiceID("h:web:80"), "x"), Register(service())],
        [
            Register(service()),
            SetMaintenance(ServiceID("h:web:80"), "x"),
            ClearMaintenance(ServiceID("h:web:80")),
        ],
        [Register(service()), Deregister(ServiceID("h:web:80"))],
        [
            Register(service(checks=(TTL,))),
            UpdateCheck(ServiceID("h:web:80"), TTL),
            Register(service(port=81, checks=(TTL,))),
        ],
    ],
    ids=["new", "status", "maintenance", "re-registered", "cleared", "removed", "kept-status"],
)
def test_the_mirror_holds_what_the_agent_holds_after_each_write(
    actions: list[Register | Deregister | SetMaintenance | ClearMaintenance | UpdateCheck],
) -> None:
    consul, mirror = FakeConsul(), Mirror(FakeConsul().applied)
    for action in actions:
        if isinstance(action, Register):
            consul.register(action.service)
        elif isinstance(action, Deregister):
            consul.deregister(action.service_id)
        elif isinstance(action, UpdateCheck):
            consul.update_ttl(action.check)
        else:
            enabled = isinstance(action, SetMaintenance)
            reason = action.reason if isinstance(action, SetMaintenance) else ""
            consul.set_maintenance(action.service_id, enabled=enabled, reason=reason)
        mirror.record(action)

    assert mirror.view() == consul.registered


def test_a_full_read_replaces_what_the_mirror_held() -> None:
    mirror = Mirror(FakeConsul().applied)
    mirror.record(Register(service("h:a:80")))
    assert not mirror.loaded

    mirror.load({ServiceID("h:b:80"): service("h:b:80")})

    assert set(mirror.view()) == {"h:b:80"}
    assert mirror.loaded


def test_applied_is_none_for_an_update_of_a_service_the_agent_does_not_hold() -> None:
    assert applied(SetMaintenance(ServiceID("h:x:80"), "x"), None) is None


def test_one_service_lock_is_held_by_one_thread_at_a_time() -> None:
    mirror = Mirror(FakeConsul().applied)
    held, release, entered = threading.Event(), threading.Event(), threading.Event()
    ids = [ServiceID("h:a:80"), ServiceID("h:b:80")]

    def first() -> None:
        with mirror.holding(ids):
            held.set()
            release.wait(timeout=10)

    def second() -> None:
        with mirror.holding(ids[1:]):
            entered.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert held.wait(timeout=10)
    threads[1].start()
    assert not entered.wait(timeout=0.3)  # a broken lock lets it in at once
    release.set()
    assert entered.wait(timeout=10)
    for t in threads:
        t.join()


class _Batch:
    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []

    def add(self, item: tuple[str, int]) -> None:
        self.items.append(item)


def test_lanes_keep_each_keys_order_and_run_keys_at_once() -> None:
    handled: list[list[tuple[str, int]]] = []
    all_running = threading.Barrier(3, timeout=10)  # broken unless the three keys run at once
    added = threading.Event()
    lock = threading.Lock()

    def handle(batch: _Batch) -> None:
        if batch.items[0][1] == 0:
            all_running.wait()
            added.wait(timeout=10)  # what comes meanwhile waits for this batch, coalesced
        with lock:
            handled.append(batch.items)

    lanes: Lanes[str, _Batch] = Lanes(handle, batch=_Batch, workers=3).start()
    for n in range(5):
        for key in ("a", "b", "c"):
            lanes.add(key, (key, n))
    added.set()
    wait_until(lanes.idle, what="lanes idle")
    lanes.stop()

    for key in ("a", "b", "c"):
        seen = [n for batch in handled for k, n in batch if k == key]
        assert seen == list(range(5))
    assert not all_running.broken
    assert len(handled) <= 6  # per key: the first batch, then the rest in one


def test_a_lane_that_raises_keeps_its_thread() -> None:
    done: list[int] = []

    def handle(batch: _Batch) -> None:
        if batch.items[0][1] == 0:
            raise RuntimeError("boom")
        done.append(batch.items[0][1])

    lanes: Lanes[str, _Batch] = Lanes(handle, batch=_Batch, workers=1).start()
    lanes.add("a", ("a", 0))
    wait_until(lanes.idle, what="first batch")
    lanes.add("a", ("a", 1))
    wait_until(lambda: done == [1], what="second batch")
    lanes.stop()


def test_two_containers_claiming_one_service_id_leave_it_desired_when_one_goes() -> None:
    known = KnownContainers(Policy(hostname="h"))
    known.learn(web("c1", "web"))
    known.learn(web("c2", "web"))  # the same name: the same service ID (a rename race)

    known.forget(ContainerID("c2"))

    assert set(known.desired()) == {"h:web:80"}
    assert known.desired([ServiceID("h:web:80"), ServiceID("h:x:80")]) == known.desired()
    known.forget(ContainerID("c1"))
    assert known.desired() == {}


def test_no_batch_runs_while_the_lanes_are_held() -> None:
    """`held` waits for the running batch to end; what is added meanwhile runs after it."""
    ran: list[str] = []
    release, running_a, holding = threading.Event(), threading.Event(), threading.Event()

    def handle(batch: _Batch) -> None:
        if batch.items[0][0] == "a":
            running_a.set()
            release.wait(timeout=10)
        ran.append(batch.items[0][0])

    lanes: Lanes[str, _Batch] = Lanes(handle, batch=_Batch, workers=2).start()
    lanes.add("a", ("a", 0))
    assert running_a.wait(timeout=10)
    done_holding = threading.Event()

    def hold() -> None:
        with lanes.held():
            holding.set()
            lanes.add("b", ("b", 0))
            done_holding.wait(timeout=10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert not holding.wait(timeout=0.3)  # a broken barrier lets it in beside "a"
    release.set()
    assert holding.wait(timeout=10)
    assert ran == ["a"]
    assert not lanes.idle()  # "b" waits, parked ...
    done_holding.set()
    holder.join(timeout=10)
    wait_until(lanes.idle, what="b, once released")  # ... and runs once the lanes are free
    lanes.stop()
    assert ran == ["a", "b"]


class _RacingDocker(FakeDocker):
    """Runs `during` the first time a container it has is inspected: an event racing a full
    pass."""

    def __init__(self) -> None:
        super().__init__()
        self.during: Callable[[], None] | None = None

    def inspect(self, container: ContainerID) -> Container | None:
        found = super().inspect(container)
        if self.during is not None and found is not None:
            during, self.during = self.during, None
            during()
        return found


def test_a_die_that_comes_while_a_full_pass_inspects_the_container_is_not_undone() -> None:
    """The die waits for the pass (its lane is held), then removes what the pass registered."""
    docker, consul, clock = _RacingDocker(), FakeConsul(), FakeClock()
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h"), retry=RetryPolicy.without_waits()
    )
    events = FakeEvents()
    daemon = Daemon(
        reconciler, events, retry=RetryPolicy.without_waits(), resync_interval=60, clock=clock
    )
    docker.add(web())

    def die() -> None:  # in the pass's inspect, which has read the container running
        docker.add(dataclasses.replace(web(), name="renamed", running=False, status="exited"))
        events.push(docker_event("c1", "die", exit_code=0))
        # A lane free to run beside the pass handles the die now, before the pass learns
        # what it read; a held one cannot, and this gives up waiting for it.
        handled = lambda: not reconciler.known.runs(ContainerID("c1"))  # noqa: E731
        with contextlib.suppress(AssertionError):
            wait_until(handled, timeout=1, what="the die beside the pass")

    with running(daemon):
        assert daemon.reconciled.wait(timeout=15)
        docker.add(dataclasses.replace(web(), name="renamed"))  # the resync sees it changed
        docker.during = die
        clock.advance(60)
        events.push(docker_event("gone", "kill", signal=1))  # wakes the worker: its resync
        wait_until(lambda: docker.during is None, what="the resync's inspect")
        wait_until(lambda: not reconciler.known.runs(ContainerID("c1")), what="the die")
        wait_until(lambda: consul.registered == {}, what="the die's deregistration")

    assert reconciler.mirror.view() == {}


class _RacingConsul(FakeConsul):
    """Runs `during` in the first full read (`services` of everything) after it is set, then
    answers what it held before: a read that an event's reconcile overtook."""

    during: Callable[[], None] | None = None

    def services(self, **kwargs: Any) -> dict[ServiceID, Service]:
        found = super().services(**kwargs)
        if self.during is not None and kwargs.get("ids") is None:
            during, self.during = self.during, None
            during()
        return found


def _resyncing(docker: FakeDocker, consul: FakeConsul) -> tuple[Daemon, FakeEvents, FakeClock]:
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h"), retry=RetryPolicy.without_waits()
    )
    events, clock = FakeEvents(), FakeClock()
    daemon = Daemon(
        reconciler, events, retry=RetryPolicy.without_waits(), resync_interval=60, clock=clock
    )
    return daemon, events, clock


def _resync(daemon: Daemon, events: FakeEvents, clock: FakeClock) -> None:
    """One resync, woken by a signal to a container it does not know, and waited for."""
    daemon.reconciled.clear()
    clock.advance(60)
    events.push(docker_event("gone", "kill", signal=1))
    assert daemon.reconciled.wait(timeout=15)  # set again at the end of a full pass


def test_a_full_pass_reads_again_when_an_event_was_reconciled_while_it_read() -> None:
    """The start's lane runs beside the pass's read and registers c2; the pass, whose read
    missed it, reads again with the lanes held, and writes nothing."""
    docker, consul = FakeDocker(), _RacingConsul()
    daemon, events, clock = _resyncing(docker, consul)
    docker.add(web())

    def start() -> None:
        docker.add(web("c2", "api", host_port=32769))
        events.push(docker_event("c2", "start"))
        wait_until(lambda: "h:api:80" in consul.registered, what="the start beside the read")

    with running(daemon):
        assert daemon.reconciled.wait(timeout=15)
        writes, full_reads = consul.writes, consul.reads.count(None)
        consul.during = start
        _resync(daemon, events, clock)
        assert consul.reads.count(None) == full_reads + 2  # the overtaken read, then again
        assert consul.writes == writes + 1  # the start's registration alone
    assert set(consul.registered) == {"h:web:80", "h:api:80"}


def test_a_full_pass_that_no_event_overtook_reads_once() -> None:
    docker, consul = FakeDocker(), FakeConsul()
    daemon, events, clock = _resyncing(docker, consul)
    docker.add(web())
    with running(daemon):
        assert daemon.reconciled.wait(timeout=15)
        writes, full_reads = consul.writes, consul.reads.count(None)
        _resync(daemon, events, clock)
        assert consul.reads.count(None) == full_reads + 1
        assert consul.writes == writes


def test_lanes_tell_whether_a_batch_ran_since_a_mark() -> None:
    release, started = threading.Event(), threading.Event()

    def handle(batch: _Batch) -> None:
        started.set()
        release.wait(timeout=10)

    lanes: Lanes[str, _Batch] = Lanes(handle, batch=_Batch, workers=1).start()
    quiet = lanes.mark()
    assert lanes.quiet_since(quiet)
    lanes.add("a", ("a", 0))
    assert started.wait(timeout=10)
    assert not lanes.quiet_since(quiet)  # "a" runs
    busy = lanes.mark()  # taken while "a" runs: "a" may write after it
    release.set()
    wait_until(lanes.idle, what="a's end")
    assert not lanes.quiet_since(busy)
    assert lanes.quiet_since(lanes.mark())
    lanes.stop()
