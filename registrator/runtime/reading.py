"""What Docker says, taught to the known containers: a full pass's list and inspects, and the
few inspects an event's reconcile needs (none for a `die` or a stop signal of a known
container).

A full pass inspects a few containers at once (`Parallel`): each inspect waits on dockerd, so
they overlap well even on two cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from loguru import logger

from registrator.core.errors import DockerError
from registrator.core.model import Container, ContainerID, ContainerSummary
from registrator.core.ports import ContainerSource
from registrator.runtime.known import KnownContainers
from registrator.runtime.observer import NULL_OBSERVER, Observer
from registrator.runtime.work import Changes

#: Docker's states of a container that is not running (and will not be without an event).
STOPPED = frozenset({"created", "exited", "dead", "removing"})
_T = TypeVar("_T")
_I = TypeVar("_I")
_A = TypeVar("_A")
_R = TypeVar("_R")


class Call(Protocol):
    """A Docker call made with the runtime's retries (`Reconciler._call`)."""

    def __call__(self, what: str, fn: Callable[[], _T]) -> _T: ...


class Parallel:
    """`each(fn, items, arg)`: `fn(item, arg)` for every item, `workers` at a time."""

    def __init__(self, workers: int, *, name: str) -> None:
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None

    def each(self, fn: Callable[[_I, _A], _R], items: list[_I], arg: _A) -> Iterable[_R]:
        """The results in the order of `items`."""
        if len(items) <= 1:
            return (fn(item, arg) for item in items)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        return self._pool.map(fn, items, [arg] * len(items))


class DockerReader:
    """Lists and inspects containers; each method returns how many it inspected."""

    def __init__(
        self,
        docker: ContainerSource,
        known: KnownContainers,
        *,
        call: Call,
        parallel: Parallel,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._docker = docker
        self._known = known
        self._call = call
        self._parallel = parallel
        self._observer = observer

    def listed(self) -> list[ContainerSummary]:
        """Docker's containers, as listed: nothing is learnt from them yet (`learn_all`)."""
        return self._call("docker.containers", self._docker.containers)

    def read_all(self, *, reinspect: bool) -> int:
        """List Docker's containers and learn them (`learn_all`)."""
        return self.learn_all(self.listed(), reinspect=reinspect)

    def learn_all(self, summaries: list[ContainerSummary], *, reinspect: bool) -> int:
        """Forget the containers not in Docker's list and inspect those not known as listed."""
        known = self._known
        known.keep_only(summaries)
        unseen = [s for s in summaries if reinspect or not known.seen(s)]
        todo = [s.id for s in unseen if not self._learn_stopped(s)]
        for done, _ in enumerate(self._parallel.each(self._read, todo, None), 1):
            self._observer.progress("inspect", done=done, total=len(todo))
        return len(todo)

    def _learn_stopped(self, summary: ContainerSummary) -> bool:
        """Learn a container the list says is stopped, without an inspect: none of it is
        registered. False when it needs one: not stopped, or `-deregister on-success` may
        keep its services (that takes its exit code)."""
        if summary.status not in STOPPED or self._known.policy.keep_failed:
            return False
        stopped = Container(summary.id, summary.name, "", status=summary.status, running=False)
        self._known.learn(stopped)
        return True

    def read_changed(self, changes: Changes) -> int:
        """What the events said, applied without an inspect where it is all that changed."""
        inspected = 0
        for container in changes.containers:
            code = changes.exited.get(container)
            if code is not None and self._known.exited(container, code):
                continue
            signals = changes.signalled.get(container, frozenset())
            if container in changes.signal_only and self._known.signalled(container, signals):
                continue
            if container in changes.network_only and not self._known.runs(container):
                continue
            inspected += 1
            self.read(container)
            if signals:
                self._known.signalled(container, signals)
        return inspected

    def _read(self, container_id: ContainerID, _: None) -> None:
        self.read(container_id)

    def read(self, container_id: ContainerID) -> None:
        """Inspect the container and learn it."""
        try:
            container = self._call("docker.inspect", lambda: self._docker.inspect(container_id))
        except DockerError as e:
            logger.warning("docker.inspect_failed", container=container_id[:12], error=str(e))
            self._observer.failed("docker.inspect_failed")
            return
        if container is None:
            self._known.forget(container_id)
        else:
            self._known.learn(container)
