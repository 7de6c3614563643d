"""The worker loop's step: coalescing and what remains owed after a failure."""

from __future__ import annotations

from registrator.daemon import Daemon, _Full, _Work
from registrator.derive import Policy
from registrator.model import Binding, Container, ContainerID, Port
from registrator.reconcile import Reconciler
from registrator.retry import RetryPolicy
from tests.unit.fakes import FakeConsul, FakeDocker


class NoEvents:
    def events(self) -> None:  # pragma: no cover - the step tests never subscribe
        raise AssertionError("not used")


def make() -> tuple[Daemon, FakeDocker, FakeConsul]:
    docker, consul = FakeDocker(), FakeConsul()
    reconciler = Reconciler(docker, consul, Policy("h"), retry=RetryPolicy.without_waits())
    return Daemon(reconciler, NoEvents(), retry=RetryPolicy.without_waits()), docker, consul  # type: ignore[arg-type]


def test_work_coalesces_containers_and_full_requests() -> None:
    work = _Work()
    for item in (ContainerID("a"), ContainerID("a"), _Full(), ContainerID("b")):
        work.add(item)

    assert work.full
    assert work.containers == {"a", "b"}


def test_a_failed_step_keeps_the_work_and_a_later_step_completes_it() -> None:
    daemon, docker, consul = make()
    docker.add(
        Container(ContainerID("c"), "web", "img", ports=(Port(80, "tcp", (Binding("", 1),)),))
    )
    consul.down = True

    owed = daemon.step(_Work(full=True))

    assert owed.full
    consul.down = False
    assert not daemon.step(owed)
    assert list(consul.registered) == ["h:web:80"]
