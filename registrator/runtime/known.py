"""What Docker last said about each container, and what it was decided to have registered."""

from __future__ import annotations

import dataclasses
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

    def learn(self, container: Container) -> None:
        """Remember what `container` now is, and decide what it should have registered."""
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

    def forget(self, container_id: ContainerID) -> None:
        self._known.pop(container_id, None)

    def keep_only(self, summaries: Iterable[ContainerSummary]) -> None:
        """Forget the containers Docker no longer lists."""
        listed = {s.id for s in summaries}
        for gone in set(self._known) - listed:
            del self._known[gone]

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
