"""What Docker last said about each container, and what it was decided to have registered.

Events of different containers are reconciled at the same time, and a full pass reads Docker
while events arrive: every method takes the one lock, and each learn is numbered, so a full
pass never overwrites what an event taught after the pass began (`since`).
"""

from __future__ import annotations

import dataclasses
import threading
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

#: Docker's states of a container that is not running (and will not be without an event).
STOPPED = frozenset({"created", "exited", "dead", "removing"})


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
        self._lock = threading.RLock()
        #: container -> the number of its last learn (or forget)
        self._learned: dict[ContainerID, int] = {}
        self._learns = 0
        #: service ID -> the containers that should have it (one, unless two claim one ID):
        #: an event's plan looks up its few services without going through every container
        self._claims: dict[ServiceID, dict[ContainerID, Service]] = {}
        #: kept containers first seen exited: the prefix of the services they keep as they are
        self._adopting: dict[ContainerID, str] = {}

    def mark(self) -> int:
        """Taken before a full pass reads Docker; its learns pass it as `since`."""
        with self._lock:
            return self._learns

    def learn(self, container: Container, *, since: int | None = None) -> bool:
        """Remember what `container` now is, and decide what it should have registered.

        With `since`, nothing changes if the container was learned after it (by an event,
        which is newer than what a full pass read): False then.
        """
        with self._lock:
            if since is not None and self._learned.get(container.id, -1) > since:
                return False
            self._learn(container)
            return True

    def _learn(self, container: Container) -> None:
        previous = self._known.get(container.id)
        derivation = decide(container, self.policy, previous.derivation if previous else None)
        if derivation.kept and not (previous and previous.derivation.kept):
            logger.info(
                "container.exited_kept", container=container.name, exit_code=container.exit_code
            )
        if previous is None or previous.derivation.problems != derivation.problems:
            self._report(derivation)
        self._unindex(container.id)
        self._known[container.id] = Known(container, derivation)
        for service in derivation.services:
            self._claims.setdefault(service.id, {})[container.id] = service
        if derivation.adopt:
            self._adopting[container.id] = derivation.adopt
        self._origin.update((s.id, container.name) for s in derivation.services)
        self._learns += 1
        self._learned[container.id] = self._learns

    def learn_stopped(self, summary: ContainerSummary, *, since: int | None = None) -> bool:
        """Learn a container the list says is stopped, without an inspect: none of it is
        registered. False when it needs one: not stopped, or `-deregister on-success` may
        keep its services (that takes its exit code)."""
        if summary.status not in STOPPED or self.policy.keep_failed:
            return False
        stopped = Container(summary.id, summary.name, "", status=summary.status, running=False)
        self.learn(stopped, since=since)
        return True

    def exited(self, container_id: ContainerID, exit_code: int) -> bool:
        """Apply a `die` event without an inspect; False when the container is not known."""
        with self._lock:
            known = self._known.get(container_id)
            if known is None:
                return False
            stopped = dataclasses.replace(
                known.container, running=False, paused=False, status="exited", exit_code=exit_code
            )
            self._learn(stopped)
            return True

    def forget(self, container_id: ContainerID, *, since: int | None = None) -> None:
        with self._lock:
            if since is not None and self._learned.get(container_id, -1) > since:
                return
            self._unindex(container_id)
            self._known.pop(container_id, None)
            self._learns += 1
            self._learned[container_id] = self._learns

    def keep_only(self, summaries: Iterable[ContainerSummary], *, since: int | None = None) -> None:
        """Forget the containers Docker no longer lists, except those an event taught after
        `since` (started after the list was taken)."""
        listed = {s.id for s in summaries}
        with self._lock:
            newer = {c for c, n in self._learned.items() if since is not None and n > since}
            for gone in set(self._known) - listed - newer:
                self._unindex(gone)
                del self._known[gone]
            kept = self._known.keys() | newer
            self._learned = {c: n for c, n in self._learned.items() if c in kept}

    def seen(self, summary: ContainerSummary) -> bool:
        """Whether the container is known under its listed name and state."""
        with self._lock:
            known = self._known.get(summary.id)
        return known is not None and (known.container.name, known.container.status) == (
            summary.name,
            summary.status,
        )

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
        with self._lock:
            wanted = self._claims.keys() if ids is None else ids
            return {
                sid: next(reversed(claim.values()))
                for sid in wanted
                if (claim := self._claims.get(sid))
            }

    def _unindex(self, container_id: ContainerID) -> None:
        self._adopting.pop(container_id, None)
        known = self._known.get(container_id)
        for service in known.derivation.services if known is not None else ():
            claim = self._claims.get(service.id, {})
            claim.pop(container_id, None)
            if not claim:
                self._claims.pop(service.id, None)

    def adopt(self) -> tuple[str, ...]:
        """Service ID prefixes of kept containers whose services are to stay as registered."""
        with self._lock:
            return tuple(self._adopting.values())

    def service_ids(self, containers: Collection[ContainerID]) -> set[ServiceID]:
        with self._lock:
            found = [self._known[c] for c in containers if c in self._known]
        return {s.id for k in found for s in k.derivation.services}

    def keeps_any(self, containers: Collection[ContainerID]) -> bool:
        with self._lock:
            return any(k.derivation.kept for c in containers if (k := self._known.get(c)))

    def origin(self, service_id: ServiceID) -> str:
        return self._origin.get(service_id, "")

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
