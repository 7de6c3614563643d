"""What Docker last said about each container, and what it was decided to have registered.

It also holds what Docker does not record: which containers received their stop signal and
are draining, and until when (a monotonic deadline: stop timeout plus `drain.GRACE`).

Events of different containers are reconciled at the same time, each container's on one lane;
a full pass runs while no lane does (the daemon holds them). Every change takes the one lock,
which guards the dictionaries, not an order of learns: a container is changed by one thread
at a time. The claims and the drains are immutable values replaced under that lock: reading
them takes none.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from loguru import logger

from registrator.core.decide import decide
from registrator.core.model import (
    Container,
    ContainerID,
    ContainerSummary,
    Derivation,
    Service,
    ServiceID,
)
from registrator.core.policy import Policy
from registrator.runtime.claims import Claims
from registrator.runtime.drains import Drains, drain_started, log_draining, log_lifted
from registrator.runtime.observer import NULL_OBSERVER, Observer


@dataclass(frozen=True, slots=True)
class Known:
    container: Container
    derivation: Derivation


class KnownContainers:
    """The container cache the reconcile path plans from; each change is decided once."""

    def __init__(self, policy: Policy, *, observer: Observer = NULL_OBSERVER) -> None:
        self.policy = policy
        self._observer = observer
        self._known: dict[ContainerID, Known] = {}
        #: the container each service came from, for log lines after the container is gone
        self._origin: dict[ServiceID, str] = {}
        #: what was said once per process: "worker" (a Swarm task's service labels out of
        #: reach), "connect" (a Connect key where it cannot be honoured)
        self._noted: set[str] = set()
        self._drains = Drains()
        self._lock = threading.Lock()
        self._claims = Claims()

    def learn(self, container: Container) -> None:
        """Remember what `container` now is, and decide what it should have registered.

        A fresh inspect knows nothing of a drain: one in progress goes on while the container
        runs the same start (`started_at`), so a resync never undoes it.
        """
        with self._lock:
            self._learn(container)

    def _learn(self, container: Container) -> None:
        known = self._known.get(container.id)
        if known is not None and known.container.draining and not container.draining:
            draining = container.running and container.started_at == known.container.started_at
            container = dataclasses.replace(container, draining=draining)
        self._decide(container)

    def _decide(self, container: Container) -> None:
        if not container.running:
            container = dataclasses.replace(container, draining=False)
        if not container.draining:
            self._drains = self._drains.stopped(container.id)
        previous = self._known.get(container.id)
        derivation = decide(container, self.policy, previous.derivation if previous else None)
        if derivation.kept and not (previous and previous.derivation.kept):
            logger.info(
                "container.exited_kept", container=container.name, exit_code=container.exit_code
            )
        if previous is None or previous.derivation.problems != derivation.problems:
            _report(derivation, self._observer)
        self._noted |= _notes(container, derivation, said=self._noted)
        before = previous.derivation if previous else None
        self._claims = self._claims.replaced(container.id, before, derivation)
        self._known[container.id] = Known(container, derivation)
        self._origin.update((s.id, container.name) for s in derivation.services)

    def exited(self, container_id: ContainerID, exit_code: int) -> bool:
        """Apply a `die` event without an inspect; False when the container is not known."""
        with self._lock:
            known = self._known.get(container_id)
            if known is None:
                return False
            stopped = dataclasses.replace(
                known.container, running=False, paused=False, status="exited", exit_code=exit_code
            )
            self._decide(stopped)
            return True

    def signalled(
        self, container_id: ContainerID, signals: Collection[int], *, now: float | None = None
    ) -> bool:
        """Apply `kill` events without an inspect; False when the container is not known.

        Its stop signal starts a drain (unless it is off for the container); any other
        signal changes nothing.
        """
        with self._lock:
            known = self._known.get(container_id)
            if known is None:
                return False
            container = known.container
            drain = drain_started(container, known.derivation, signals, self.policy)
            if drain is None:
                return True
            self._decide(dataclasses.replace(container, draining=True))
            self._drains = self._drains.started(container, time.monotonic() if now is None else now)
        log_draining(container, drain)
        self._observer.drained(lifted=False)
        return True

    def may_drain(self, container_id: ContainerID, signal: int | None) -> bool:
        """Whether a `kill` with `signal` can start a drain: False for a known container that
        has nothing registered, is draining already, or stops on another signal."""
        with self._lock:
            known = self._known.get(container_id)
        if known is None:
            return True
        c = known.container
        return bool(known.derivation.services) and (c.stop_signal, c.draining) == (signal, False)

    def drain_deadline(self) -> float | None:
        """When the next drain in progress is due to be lifted (monotonic), if any is."""
        return self._drains.deadline()

    def lift_drains(self, now: float | None = None) -> list[ContainerID]:
        """End the drains of containers still running at their deadline: they were not being
        stopped after all (an application that reloads on SIGTERM). Returns them."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = self._drains.due(now)
            lifted = [self._known[c].container for c in due]
            for container in lifted:
                self._decide(dataclasses.replace(container, draining=False))
        for container in lifted:
            log_lifted(container)
            self._observer.drained(lifted=True)
        return due

    def forget(self, container_id: ContainerID) -> None:
        with self._lock:
            self._drop(container_id)

    def keep_only(self, summaries: Iterable[ContainerSummary]) -> None:
        """Forget the containers Docker no longer lists."""
        listed = {s.id for s in summaries}
        with self._lock:
            for gone in set(self._known) - listed:
                self._drop(gone)

    def _drop(self, container_id: ContainerID) -> None:
        known = self._known.pop(container_id, None)
        self._claims = self._claims.replaced(
            container_id, known.derivation if known else None, None
        )
        self._drains = self._drains.stopped(container_id)

    def seen(self, summary: ContainerSummary) -> bool:
        """Whether the container is known under its listed name and state."""
        with self._lock:
            known = self._known.get(summary.id)
        listed = (summary.name, summary.status)
        return known is not None and (known.container.name, known.container.status) == listed

    def runs(self, container_id: ContainerID) -> bool:
        with self._lock:
            known = self._known.get(container_id)
        return known is not None and known.container.running

    def redecide(self, policy: Policy) -> None:
        """Decide everything again under `policy` (the registry's address changed)."""
        with self._lock:
            self.policy = policy
            for known in list(self._known.values()):
                self._learn(known.container)

    def desired(self, ids: Collection[ServiceID] | None = None) -> dict[ServiceID, Service]:
        """The services every known container should have; with `ids`, only those. Of two
        containers claiming one ID, the one that claimed it last."""
        return self._claims.desired(ids)

    def adopt(self) -> tuple[str, ...]:
        """Service ID prefixes of kept containers whose services are to stay as registered."""
        return self._claims.adopt()

    def service_ids(self, containers: Collection[ContainerID]) -> set[ServiceID]:
        with self._lock:
            found = [self._known[c] for c in containers if c in self._known]
        return {s.id for k in found for s in k.derivation.services}

    def tasks_of(self, services: Collection[str]) -> set[ContainerID]:
        """The known containers running a task of one of these Swarm services (every event asks)."""
        with self._lock:
            return {
                c.container.id
                for c in (self._known.values() if services else ())
                if c.container.swarm is not None and c.container.swarm.service_id in services
            }

    def keeps_any(self, containers: Collection[ContainerID]) -> bool:
        with self._lock:
            return any(k.derivation.kept for c in containers if (k := self._known.get(c)))

    def origins(self, ids: Collection[ServiceID]) -> dict[ServiceID, str]:
        with self._lock:  # the container each service came from, for log lines
            return {sid: self._origin.get(sid, "") for sid in ids}


def _notes(container: Container, derivation: Derivation, *, said: set[str]) -> set[str]:
    """What is said once per process and was said now (see `_note_worker`, `_note_connect`)."""
    now = set()
    if "worker" not in said and _note_worker(container):
        now.add("worker")
    if "connect" not in said and _note_connect(container, derivation):
        now.add("connect")
    return now


def _note_worker(container: Container) -> bool:
    """On a worker, a Swarm service's own labels are out of reach: said once per process
    (True once said)."""
    task = container.swarm
    if task is None or task.service_labels is not None:
        return False
    logger.warning(
        "swarm.service_labels_unavailable",
        container=container.name,
        swarm_service=task.service_name,
        reason="only a Swarm manager can read a service's own labels (docker service create "
        "--label); tasks on this node are registered from their container labels and env",
    )
    return True


def _note_connect(container: Container, derivation: Derivation) -> bool:
    """Connect asked where it cannot be honoured: said once per process (True once said)."""
    if not derivation.connect_ignored:
        return False
    where = "a Swarm task" if container.swarm is not None else "this registry (no Consul agent)"
    logger.warning(
        "connect.ignored",
        container=container.name,
        key=derivation.connect_ignored,
        reason=f"Consul Connect keys are ignored for {where}: only the Consul agent registers "
        "sidecars, and only for plain containers (said once, for the first container asking)",
    )
    return True


def _report(derivation: Derivation, observer: Observer) -> None:
    for p in derivation.problems:
        observer.failed("container.bad_declaration")
        logger.warning(
            "container.bad_declaration",
            container=p.container,
            key=p.key,
            value=p.value,
            reason=p.reason,
        )
