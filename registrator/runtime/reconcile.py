"""The one reconcile path: Docker says what should be registered, Consul what is; write the gap.

Events, start-up, the periodic resync, the agent check and `registrator --resync` all call
`Reconciler.reconcile`; nothing else registers or deregisters. An event reconciles only the
containers it names; a full reconcile also sweeps owned services that nothing desires any more.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

from loguru import logger

from registrator.core.derive import derive
from registrator.core.errors import DockerError, RegistryDenied, RegistryError
from registrator.core.model import (
    Check,
    Container,
    ContainerID,
    ContainerSummary,
    Derivation,
    Service,
    ServiceID,
)
from registrator.core.plan import Plan, StatusUpdate, plan, reported
from registrator.core.policy import Policy
from registrator.runtime.observer import NULL_OBSERVER, Observer
from registrator.runtime.retry import RetryPolicy

_T = TypeVar("_T")
_Fn = Callable[[], _T]


class DockerSource(Protocol):
    def containers(self) -> list[ContainerSummary]: ...
    def inspect(self, container: ContainerID) -> Container | None: ...


class ConsulRegistry(Protocol):
    def advertise_address(self) -> str: ...
    def services(
        self,
        *,
        owner: str | None = None,
        ids: Collection[ServiceID] | None = None,
        with_checks: bool = True,
    ) -> dict[ServiceID, Service]: ...
    def register(self, service: Service) -> None: ...
    def deregister(self, service: ServiceID) -> None: ...
    def set_maintenance(self, service: ServiceID, *, enabled: bool, reason: str = "") -> None: ...
    def update_ttl(self, check: Check) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconcile did; `errors` non-empty means some writes must be tried again."""

    plan: Plan
    registered: int = 0
    updated: int = 0
    deregistered: int = 0
    checks_updated: int = 0
    errors: tuple[str, ...] = ()
    #: containers this reconcile asked Docker to inspect
    inspected: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class _Events:
    """What the events of a batch say about their containers (see `Reconciler.reconcile`)."""

    exited: Mapping[ContainerID, int] = field(default_factory=dict)
    network_only: frozenset[ContainerID] = frozenset()


@dataclass
class _Known:
    container: Container
    derivation: Derivation = field(default_factory=Derivation)
    #: exited non-zero under `-deregister on-success`: its services stay for the health check
    kept: bool = False


class Reconciler:
    """Holds what Docker last said about each container, and reconciles Consul against it."""

    def __init__(
        self,
        docker: DockerSource,
        consul: ConsulRegistry,
        policy: Policy,
        *,
        retry: RetryPolicy | None = None,
        keep_failed: bool = False,
        stop: threading.Event | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._observer = observer
        self._docker = docker
        self._consul = consul
        self._policy = policy
        self._retry = retry or RetryPolicy()
        self._keep_failed = keep_failed
        self._stop = stop
        self._known: dict[ContainerID, _Known] = {}
        #: the container name each registered service came from, for log lines after it is gone
        self._origin: dict[ServiceID, str] = {}
        self._address_known = bool(policy.host_ip)
        self._denied_reported = False
        self._inspected = 0

    def desired(self) -> dict[ServiceID, Service]:
        return {s.id: s for k in self._known.values() for s in k.derivation.services}

    def reconcile(
        self,
        dirty: Collection[ContainerID] | None = None,
        *,
        reinspect: bool = False,
        docker: bool = True,
        refresh: bool = False,
        exited: Mapping[ContainerID, int] | None = None,
        network_only: Collection[ContainerID] = (),
    ) -> Outcome:
        """Reconcile the `dirty` containers, or everything when `dirty` is None.

        A full reconcile lists Docker's containers and inspects only those it has not seen in
        their current name and state, unless `reinspect` (events may have been missed). With
        `docker=False` it trusts what it already knows and only compares with Consul: the
        cheap check that repairs an agent that lost or changed its services. `refresh`
        re-asserts every TTL check registrator drives, which restarts their TTLs.

        `exited` maps containers whose latest event was `die` to the exit code it reported:
        that is all that changed, so they are not inspected. Docker answers an inspect only
        after it has cleaned the container up, which would delay deregistration ~100 ms.
        `network_only` containers had only network events: those of a container not known to
        run are skipped. Docker attaches networks while it starts a container and detaches
        them while it cleans one up, and answers an inspect only once it is done: hundreds of
        milliseconds in which every other event would wait. Its `start` says what matters.
        """
        self._inspected = 0
        events = _Events(exited or {}, frozenset(network_only))
        todo, actual = self._plan(
            dirty, reinspect=reinspect, docker=docker, refresh=refresh, events=events
        )
        return self._apply(todo, actual)

    def preview(self) -> Plan:
        """The plan of a full reconcile, without writing anything (`--resync --dry-run`)."""
        return self._plan(None, reinspect=False, docker=True)[0]

    def release(self) -> Outcome:
        """Deregister every service this registrator owns (on exit, when asked to)."""
        actual = self._call("consul.services", self._owned)
        return self._apply(plan({}, actual), actual)

    def _plan(
        self,
        dirty: Collection[ContainerID] | None,
        *,
        reinspect: bool,
        docker: bool,
        refresh: bool = False,
        events: _Events | None = None,
    ) -> tuple[Plan, dict[ServiceID, Service]]:
        if not self._address_known or (dirty is None and docker):
            self._refresh_address()
        scope: set[ServiceID] | None = None
        if dirty is not None:
            scope = self._service_ids(dirty)
            self._refresh_each(dirty, events or _Events())
            scope |= self._service_ids(dirty)
        elif docker:
            self._refresh_all(reinspect=reinspect)
        compares = scope is None or self._compares(scope, dirty or ())
        actual = self._call("consul.services", partial(self._owned, scope, with_checks=compares))
        self._adopt_kept(actual)
        return plan(self.desired(), actual, scope=scope, refresh=refresh), actual

    def _owned(
        self, ids: Collection[ServiceID] | None = None, *, with_checks: bool = True
    ) -> dict[ServiceID, Service]:
        """What the agent holds of ours: everything, or only `ids` (an event's scope)."""
        return self._consul.services(owner=self._policy.hostname, ids=ids, with_checks=with_checks)

    def _compares(self, scope: Collection[ServiceID], dirty: Collection[ContainerID]) -> bool:
        """Whether a scoped plan compares services (their checks count) or only removes them.

        A `die` only removes: its reconcile does not need the checks. A kept container
        (`-deregister on-success`) may adopt what the agent holds, checks included.
        """
        desired = self.desired()
        kept = any(k.kept for c in dirty if (k := self._known.get(c)) is not None)
        return kept or any(i in desired for i in scope)

    def _call(self, what: str, fn: _Fn[_T]) -> _T:
        return self._retry.call(what, fn, stop=self._stop)

    def _service_ids(self, containers: Collection[ContainerID]) -> set[ServiceID]:
        return {
            s.id for c in containers if c in self._known for s in self._known[c].derivation.services
        }

    def _refresh_address(self) -> None:
        if self._policy.host_ip:
            return
        address = self._call("consul.self", self._consul.advertise_address)
        self._address_known = True
        if address != self._policy.advertise_address:
            self._policy = dataclasses.replace(self._policy, advertise_address=address)
            for known in self._known.values():
                if not known.kept:
                    known.derivation = self._derive(known.container)

    def _refresh_all(self, *, reinspect: bool) -> None:
        summaries = self._call("docker.containers", self._docker.containers)
        current = {s.id: s for s in summaries}
        for gone in set(self._known) - set(current):
            del self._known[gone]
        for done, summary in enumerate(summaries, 1):
            known = self._known.get(summary.id)
            seen = known and (known.container.name, known.container.status)
            if reinspect or seen != (summary.name, summary.status):
                self._refresh(summary.id)
            self._observer.progress("inspect", done=done, total=len(summaries))

    def _refresh_each(self, containers: Collection[ContainerID], events: _Events) -> None:
        exited = events.exited
        learned = self._learn_exits({c: exited[c] for c in containers if c in exited})
        for container in containers:
            if container in learned or (
                container in events.network_only and not self._runs(container)
            ):
                continue
            self._refresh(container)

    def _runs(self, container_id: ContainerID) -> bool:
        known = self._known.get(container_id)
        return known is not None and known.container.running

    def _learn_exits(self, exited: Mapping[ContainerID, int]) -> set[ContainerID]:
        """Apply `die` events to the containers they name; those never seen need an inspect."""
        learned = set()
        for container_id, exit_code in exited.items():
            known = self._known.get(container_id)
            if known is not None:
                stopped = dataclasses.replace(
                    known.container,
                    running=False,
                    paused=False,
                    status="exited",
                    exit_code=exit_code,
                )
                self._learn(container_id, stopped)
                learned.add(container_id)
        return learned

    def _refresh(self, container_id: ContainerID) -> None:
        self._inspected += 1
        try:
            container = self._call("docker.inspect", lambda: self._docker.inspect(container_id))
        except DockerError as e:
            logger.warning("docker.inspect_failed", container=container_id[:12], error=str(e))
            self._observer.failed("docker.inspect_failed")
            return
        if container is None:
            self._known.pop(container_id, None)
            return
        self._learn(container_id, self._with_network_peer(container))

    def _learn(self, container_id: ContainerID, container: Container) -> None:
        """Remember what `container` now is and what it should have registered."""
        previous = self._known.get(container_id)
        if self._keeps(container):
            kept = previous.derivation if previous else Derivation()
            self._known[container_id] = _Known(container, kept, kept=True)
            logger.info(
                "container.exited_kept", container=container.name, exit_code=container.exit_code
            )
            return
        derivation = self._derive(container)
        if previous is None or previous.derivation.problems != derivation.problems:
            for p in derivation.problems:
                self._observer.failed("container.bad_declaration")
                logger.warning(
                    "container.bad_declaration",
                    container=p.container,
                    key=p.key,
                    value=p.value,
                    reason=p.reason,
                )
        self._known[container_id] = _Known(container, derivation)

    def _with_network_peer(self, container: Container) -> Container:
        """`--network container:<id>`: derivation needs that container's network, so fetch it."""
        peer_id = container.network_peer_id
        if peer_id is None:
            return container
        try:
            peer = self._call("docker.inspect", lambda: self._docker.inspect(peer_id))
        except DockerError as e:
            logger.warning("docker.inspect_failed", container=peer_id[:12], error=str(e))
            peer = None
        return dataclasses.replace(container, network_peer=peer)

    def _keeps(self, container: Container) -> bool:
        """`-deregister on-success`: a container that exited with an error keeps its services.

        Exit 0 and exits by a signal (128 + n: `docker stop`, OOM kill) deregister.
        """
        return (
            self._keep_failed
            and not container.running
            and container.status == "exited"
            and 0 < container.exit_code < 128
        )

    def _adopt_kept(self, actual: Mapping[ServiceID, Service]) -> None:
        """A kept container seen first after it exited: keep what Consul holds for it."""
        for known in self._known.values():
            if known.kept and not known.derivation.services:
                prefix = f"{self._policy.hostname}:{known.container.name}:"
                adopted = tuple(s for i, s in actual.items() if i.startswith(prefix))
                known.derivation = Derivation(services=adopted)

    def _derive(self, container: Container) -> Derivation:
        derivation = derive(container, self._policy)
        if not container.paused:
            return derivation
        paused = tuple(dataclasses.replace(s, maintenance=True) for s in derivation.services)
        return dataclasses.replace(derivation, services=paused)

    def _apply(self, todo: Plan, actual: Mapping[ServiceID, Service]) -> Outcome:
        counts = {"service.registered": 0, "service.updated": 0, "service.deregistered": 0}
        errors: list[str] = []
        failed: set[ServiceID] = set()
        total, done = len(todo.register) + len(todo.deregister), 0
        for service in todo.register:
            event = "service.updated" if service.id in actual else "service.registered"
            known = self._known.get(ContainerID(service.container))
            if known is not None:
                self._origin[service.id] = known.container.name
            if self._write(event, service.id, errors, partial(self._put, service, actual)):
                counts[event] += 1
            else:
                failed.add(service.id)
            done += 1
            self._observer.progress("write", done=done, total=total)
        checks_updated = sum(
            self._set_status(update, errors)
            for update in todo.statuses
            if update.service not in failed
        )
        for service_id in todo.deregister:
            write = partial(self._consul.deregister, service_id)
            if self._write("service.deregistered", service_id, errors, write):
                counts["service.deregistered"] += 1
                self._origin.pop(service_id, None)
            done += 1
            self._observer.progress("write", done=done, total=total)
        owned = len(actual) + counts["service.registered"] - counts["service.deregistered"]
        self._observer.owned(owned)
        return Outcome(
            todo,
            registered=counts["service.registered"],
            updated=counts["service.updated"],
            deregistered=counts["service.deregistered"],
            checks_updated=checks_updated,
            errors=tuple(errors),
            inspected=self._inspected,
        )

    def _put(self, service: Service, actual: Mapping[ServiceID, Service]) -> None:
        before = actual.get(service.id)
        if before is None or reported(
            dataclasses.replace(before, maintenance=service.maintenance)
        ) != reported(service):
            self._consul.register(service)
        if service.maintenance or (before is not None and before.maintenance):
            reason = "container paused" if service.maintenance else ""
            self._consul.set_maintenance(service.id, enabled=service.maintenance, reason=reason)

    def _write(
        self, event: str, service_id: ServiceID, errors: list[str], write: _Fn[None]
    ) -> bool:
        if not self._attempt(event, service_id, errors, write):
            return False
        logger.info(event, service=service_id, container=self._origin.get(service_id, ""))
        self._observer.written(event)
        return True

    def _set_status(self, update: StatusUpdate, errors: list[str]) -> bool:
        """Write a driven check's status; a change is logged, a mere TTL refresh only traced."""
        check = update.check
        write = partial(self._consul.update_ttl, check)
        if not self._attempt("check.update", update.service, errors, write):
            return False
        if update.changed:
            logger.info("check.status", check=check.id, status=check.status, output=check.output)
        else:
            logger.debug("check.refreshed", check=check.id, status=check.status)
        return True

    def _attempt(
        self, what: str, service_id: ServiceID, errors: list[str], write: _Fn[None]
    ) -> bool:
        try:
            self._call(what, write)
        except RegistryDenied as e:
            self.report_denied(e)
            errors.append(f"{service_id}: permission denied")
            return False
        except RegistryError as e:
            logger.error("consul.write_failed", service=service_id, error=str(e))
            self._observer.failed("consul.write_failed")
            errors.append(f"{service_id}: {e}")
            return False
        return True

    def report_denied(self, error: RegistryDenied) -> None:
        """Say once, clearly, that the token lacks a permission; retries stay quiet about it."""
        self._observer.failed("consul.permission_denied")
        if self._denied_reported:
            logger.debug("consul.permission_denied", error=str(error))
            return
        logger.error(
            "consul.permission_denied",
            error=str(error),
            hint="the ACL token needs agent:read and service:write (see README, ACL)",
        )
        self._denied_reported = True
