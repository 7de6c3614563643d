"""What the reconcile path and the worker report through the observer seam."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from registrator.core.errors import RegistryError
from registrator.core.model import ContainerID, Service
from registrator.core.policy import Policy
from registrator.runtime.daemon import Daemon
from registrator.runtime.observer import Observers, Peer
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.startup import reconciler_for
from registrator.runtime.work import FullPass, Pending
from tests.support import web
from tests.unit.fakes import FakeConsul, FakeDocker


@dataclass
class Recorder:
    calls: list[tuple[object, ...]] = field(default_factory=list)

    def written(self, event: str) -> None:
        self.calls.append(("written", event))

    def failed(self, kind: str) -> None:
        self.calls.append(("failed", kind))

    def reconciled(self, *, scope: str, seconds: float, ok: bool) -> None:
        assert seconds >= 0
        self.calls.append(("reconciled", scope, ok))

    def owned(self, count: int) -> None:
        self.calls.append(("owned", count))

    def reconnected(self, peer: Peer) -> None:
        self.calls.append(("reconnected", peer))

    def progress(self, stage: str, *, done: int, total: int) -> None:
        self.calls.append(("progress", stage, done, total))

    def drained(self, *, lifted: bool) -> None:
        self.calls.append(("drained", lifted))

    def of(self, kind: str) -> list[tuple[object, ...]]:
        return [c for c in self.calls if c[0] == kind]


class RefusingConsul(FakeConsul):
    def register(self, service: Service) -> None:
        raise RegistryError("400 bad check")


def reconciler_with(
    docker: FakeDocker, consul: FakeConsul, recorder: Recorder
) -> tuple[Reconciler, Daemon]:
    retry = RetryPolicy.without_waits()
    reconciler = reconciler_for(docker, consul, Policy("h"), retry=retry, observer=recorder)
    return reconciler, Daemon(reconciler, None, retry=retry, observer=recorder)  # type: ignore[arg-type]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_writes_and_owned_services_are_reported(recorder: Recorder) -> None:
    docker, consul = FakeDocker(), FakeConsul()
    reconciler, _ = reconciler_with(docker, consul, recorder)
    docker.add(web("a", "one"))
    docker.add(web("b", "two"))

    reconciler.full()
    del docker.containers_by_id[ContainerID("b")]
    reconciler.full()

    assert recorder.of("written") == [
        ("written", "service.registered"),
        ("written", "service.registered"),
        ("written", "service.deregistered"),
    ]
    assert recorder.of("owned") == [("owned", 2), ("owned", 1)]


def test_progress_counts_every_container_inspected_and_every_write(recorder: Recorder) -> None:
    docker, consul = FakeDocker(), FakeConsul()
    reconciler, _ = reconciler_with(docker, consul, recorder)
    for i in range(3):
        docker.add(web(str(i), f"c{i}"))

    reconciler.full()

    assert recorder.of("progress") == [
        *(("progress", "inspect", i, 3) for i in (1, 2, 3)),
        *(("progress", "write", i, 3) for i in (1, 2, 3)),
    ]


def test_bad_declarations_and_refused_writes_are_counted_by_kind(recorder: Recorder) -> None:
    docker, consul = FakeDocker(), RefusingConsul()
    reconciler, _ = reconciler_with(docker, consul, recorder)
    docker.add(web("a", "one", env={"SERVICE_BAD.KEY": "x"}))

    reconciler.full()

    assert recorder.of("failed") == [
        ("failed", "container.bad_declaration"),
        ("failed", "registry.write_failed"),
    ]
    assert recorder.of("owned") == [("owned", 0)]


def test_a_failed_pass_is_counted_and_the_registry_coming_back_is_a_reconnect(
    recorder: Recorder,
) -> None:
    docker, consul = FakeDocker(), FakeConsul()
    _, daemon = reconciler_with(docker, consul, recorder)
    consul.down = True

    owed = daemon.step(Pending(full=FullPass.RESYNC))
    consul.down = False
    daemon.step(owed)
    daemon.step(Pending(full=FullPass.RESYNC))

    assert [c for c in recorder.calls if c[0] in {"failed", "reconciled", "reconnected"}] == [
        ("failed", "reconcile.failed"),
        ("reconciled", "full", True),
        ("reconnected", "registry"),
        ("reconciled", "full", True),
    ]


def test_observers_fan_out_every_call() -> None:
    first, second = Recorder(), Recorder()
    both = Observers(first, second)

    both.written("service.registered")
    both.failed("reconcile.failed")
    both.reconciled(scope="full", seconds=0.1, ok=True)
    both.owned(3)
    both.reconnected("docker")
    both.progress("inspect", done=1, total=2)

    assert first.calls == second.calls
    assert len(first.calls) == 6
