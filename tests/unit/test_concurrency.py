"""The pieces that let events be reconciled at once: the mirror of the agent, the lanes, the
container cache's numbered learns, and a full pass racing an event."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

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
from registrator.runtime.known import KnownContainers
from registrator.runtime.lanes import Lanes
from registrator.runtime.mirror import Mirror
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.startup import reconciler_for
from registrator.runtime.work import Changes
from tests.support import web
from tests.unit.fakes import FakeConsul, FakeDocker

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


def test_a_full_read_keeps_what_was_written_after_it_began() -> None:
    mirror = Mirror(FakeConsul().applied)
    mirror.record(Register(service("h:a:80")))
    since = mirror.mark()
    read = {ServiceID("h:a:80"): service("h:a:80"), ServiceID("h:b:80"): service("h:b:80")}
    mirror.record(Deregister(ServiceID("h:b:80")))  # an event, while the read was under way
    mirror.record(Register(service("h:c:80")))

    mirror.load(read, since=since)

    assert set(mirror.view()) == {"h:a:80", "h:c:80"}
    assert mirror.loaded
    mirror.load({}, since=mirror.mark())
    assert mirror.view() == {}


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


def test_a_full_pass_never_overwrites_what_an_event_taught_after_it_began() -> None:
    known = KnownContainers(Policy(hostname="h"))
    since = known.mark()
    known.learn(web())  # an event, while the pass was inspecting
    stale = dataclasses.replace(web(), running=False, status="exited")

    assert not known.learn(stale, since=since)
    known.keep_only([], since=since)  # the pass's list was taken before the container started

    assert set(known.desired()) == {"h:web:80"}
    known.keep_only([])
    assert known.desired() == {}


class _RacingDocker(FakeDocker):
    """Runs `during` the first time a container is inspected: an event racing a full pass."""

    def __init__(self) -> None:
        super().__init__()
        self.during: Callable[[], None] | None = None

    def inspect(self, container: ContainerID) -> Container | None:
        found = super().inspect(container)
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return found


def test_a_die_handled_while_a_full_pass_inspects_the_container_is_not_undone() -> None:
    docker, consul = _RacingDocker(), FakeConsul()
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h"), retry=RetryPolicy.without_waits()
    )
    docker.add(web())
    reconciler.full()
    docker.add(dataclasses.replace(web(), name="renamed"))  # the pass sees it changed

    def die() -> None:
        docker.add(dataclasses.replace(web(), name="renamed", running=False, status="exited"))
        reconciler.changes(Changes(frozenset({ContainerID("c1")}), {ContainerID("c1"): 0}))

    docker.during = die
    reconciler.full()  # inspected the container running, then learned of the die

    assert consul.registered == {}
    assert reconciler.mirror.view() == {}
    assert not reconciler.known.runs(ContainerID("c1"))
