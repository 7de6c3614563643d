"""What Docker last said about each container, and what it was decided to have registered.

It also holds what Docker does not record: which containers received their stop signal and
are draining, and until when (a monotonic deadline: stop timeout plus `drain.GRACE`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from loguru import logger

from registrator.core.decide import decide
from registrator.core.drain import drain_for, lifted_after, signal_name
from registrator.core.model import (
    Container,
    ContainerID,
    ContainerSummary,
    Derivation,
    Service,
    ServiceID,
)
from registrator.core.policy import Policy
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
        #: a Swarm task whose service labels could not be read (a worker) was logged
        self._noted_worker = False
        #: containers draining -> when their drain is lifted if they still run (monotonic)
        self._drains: dict[ContainerID, float] = {}

    def learn(self, container: Container) -> None:
        """Remember what `container` now is, and decide what it should have registered.

        A fresh inspect knows nothing of a drain: one in progress goes on while the container
        runs the same start (`started_at`), so a resync never undoes it.
        """
        known = self._known.get(container.id)
        if known is not None and known.container.draining and not container.draining:
            draining = container.running and container.started_at == known.container.started_at
            container = dataclasses.replace(container, draining=draining)
        self._decide(container)

    def _decide(self, container: Container) -> None:
        if not container.running:
            container = dataclasses.replace(container, draining=False)
        if not container.draining:
            self._drains.pop(container.id, None)
        previous = self._known.get(container.id)
        derivation = decide(container, self.policy, previous.derivation if previous else None)
        if derivation.kept and not (previous and previous.derivation.kept):
            logger.info(
                "container.exited_kept", container=container.name, exit_code=container.exit_code
            )
        if previous is None or previous.derivation.problems != derivation.problems:
            self._report(derivation)
        self._note_worker(container)
        self._known[container.id] = Known(container, derivation)
        self._origin.update((s.id, container.name) for s in derivation.services)

    def exited(self, container_id: ContainerID, exit_code: int) -> bool:
        """Apply a `die` event without an inspect; False when the container is not known."""
        known = self._known.get(container_id)
        if known is None:
            return False
        stopped = dataclasses.replace(
            known.container, running=False, paused=False, status="exited", exit_code=exit_code
        )
        self.learn(stopped)
        return True

    def signalled(
        self, container_id: ContainerID, signals: Collection[int], *, now: float | None = None
    ) -> bool:
        """Apply `kill` events without an inspect; False when the container is not known.

        Its stop signal starts a drain (unless it is off for the container); any other
        signal changes nothing.
        """
        known = self._known.get(container_id)
        if known is None:
            return False
        container = known.container
        if container.stop_signal not in signals or container.draining:
            return True
        if not known.derivation.services:  # not running, ignored, not ours: nothing to drain
            return True
        drain = drain_for(container, self.policy)
        if drain.mode == "off":
            logger.debug("container.not_drained", container=container.name, why=drain.source)
            return True
        self._decide(dataclasses.replace(container, draining=True))
        now = time.monotonic() if now is None else now
        self._drains[container_id] = now + lifted_after(container)
        logger.info(
            "container.draining",
            container=container.name,
            signal=signal_name(container.stop_signal),
            mode=drain.mode,
            lifted_after=lifted_after(container),
        )
        self._observer.drained(lifted=False)
        return True

    def drain_deadline(self) -> float | None:
        """When the next drain in progress is due to be lifted (monotonic), if any is."""
        return min(self._drains.values(), default=None)

    def lift_drains(self, now: float | None = None) -> list[ContainerID]:
        """End the drains of containers still running at their deadline: they were not being
        stopped after all (an application that reloads on SIGTERM). Returns them."""
        now = time.monotonic() if now is None else now
        due = [c for c, deadline in self._drains.items() if deadline <= now]
        for container_id in due:
            container = self._known[container_id].container
            self._decide(dataclasses.replace(container, draining=False))
            logger.warning(
                "container.drain_lifted",
                container=container.name,
                after=lifted_after(container),
                reason="still running after its stop timeout: it was not being stopped",
            )
            self._observer.drained(lifted=True)
        return due

    def forget(self, container_id: ContainerID) -> None:
        self._known.pop(container_id, None)
        self._drains.pop(container_id, None)

    def keep_only(self, summaries: Iterable[ContainerSummary]) -> None:
        """Forget the containers Docker no longer lists."""
        listed = {s.id for s in summaries}
        for gone in set(self._known) - listed:
            self.forget(gone)

    def seen(self, summary: ContainerSummary) -> bool:
        """Whether the container is known under its listed name and state."""
        known = self._known.get(summary.id)
        return known is not None and (known.container.name, known.container.status) == (
            summary.name,
            summary.status,
        )

    def runs(self, container_id: ContainerID) -> bool:
        known = self._known.get(container_id)
        return known is not None and known.container.running

    def redecide(self, policy: Policy) -> None:
        """Decide everything again under `policy` (the registry's address changed)."""
        self.policy = policy
        for known in list(self._known.values()):
            self.learn(known.container)

    def desired(self) -> dict[ServiceID, Service]:
        return {s.id: s for k in self._known.values() for s in k.derivation.services}

    def adopt(self) -> tuple[str, ...]:
        """Service ID prefixes of kept containers whose services are to stay as registered."""
        return tuple(k.derivation.adopt for k in self._known.values() if k.derivation.adopt)

    def service_ids(self, containers: Collection[ContainerID]) -> set[ServiceID]:
        return {
            s.id for c in containers if c in self._known for s in self._known[c].derivation.services
        }

    def tasks_of(self, services: Collection[str]) -> set[ContainerID]:
        """The known containers that run a task of one of these Swarm services."""
        return {
            c.container.id
            for c in self._known.values()
            if c.container.swarm is not None and c.container.swarm.service_id in services
        }

    def keeps_any(self, containers: Collection[ContainerID]) -> bool:
        return any(k.derivation.kept for c in containers if (k := self._known.get(c)))

    def origin(self, service_id: ServiceID) -> str:
        return self._origin.get(service_id, "")

    def _note_worker(self, container: Container) -> None:
        """Once per process: on a worker, a Swarm service's own labels are out of reach."""
        task = container.swarm
        if self._noted_worker or task is None or task.service_labels is not None:
            return
        self._noted_worker = True
        logger.warning(
            "swarm.service_labels_unavailable",
            container=container.name,
            swarm_service=task.service_name,
            reason="only a Swarm manager can read a service's own labels (docker service create "
            "--label); tasks on this node are registered from their container labels and env",
        )

    def _report(self, derivation: Derivation) -> None:
        for p in derivation.problems:
            self._observer.failed("container.bad_declaration")
            logger.warning(
                "container.bad_declaration",
                container=p.container,
                key=p.key,
                value=p.value,
                reason=p.reason,
            )
