"""The one reconcile path: Docker says what should be registered, Consul what is; write the gap.

Events, start-up, the periodic resync and `registrator --resync` all call `Reconciler.reconcile`;
nothing else registers or deregisters. An event reconciles only the containers it names; a full
reconcile also sweeps owned services that nothing desires any more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger

from registrator.derive import Policy, derive
from registrator.errors import ConsulError, ConsulPermissionDenied, DockerError
from registrator.model import (
    Container,
    ContainerID,
    ContainerSummary,
    Derivation,
    Service,
    ServiceID,
)
from registrator.plan import Plan, plan
from registrator.retry import RetryPolicy


class DockerSource(Protocol):
    def containers(self) -> list[ContainerSummary]: ...
    def inspect(self, container: ContainerID) -> Container | None: ...


class ConsulRegistry(Protocol):
    def advertise_address(self) -> str: ...
    def services(self, *, owner: str | None = None) -> dict[ServiceID, Service]: ...
    def register(self, service: Service) -> None: ...
    def deregister(self, service: ServiceID) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconcile did; `errors` non-empty means some writes must be tried again."""

    plan: Plan
    registered: int = 0
    updated: int = 0
    deregistered: int = 0
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Known:
    container: Container
    derivation: Derivation = field(default_factory=Derivation)


class Reconciler:
    """Holds what Docker last said about each container, and reconciles Consul against it."""

    def __init__(
        self,
        docker: DockerSource,
        consul: ConsulRegistry,
        policy: Policy,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._docker = docker
        self._consul = consul
        self._policy = policy
        self._retry = retry or RetryPolicy()
        self._known: dict[ContainerID, _Known] = {}
        #: the container name each registered service came from, for log lines after it is gone
        self._origin: dict[ServiceID, str] = {}
        self._denied_reported = False

    def desired(self) -> dict[ServiceID, Service]:
        return {s.id: s for k in self._known.values() for s in k.derivation.services}

    def reconcile(
        self, dirty: Collection[ContainerID] | None = None, *, reinspect: bool = False
    ) -> Outcome:
        """Reconcile the `dirty` containers, or everything when `dirty` is None.

        A full reconcile inspects only containers it has not seen in their current name and
        state, unless `reinspect` (after the event stream was lost and events may be missing).
        """
        self._ensure_address()
        if dirty is None:
            self._refresh_all(reinspect=reinspect)
            scope: set[ServiceID] | None = None
        else:
            scope = self._service_ids(dirty)
            for container in dirty:
                self._refresh(container)
            scope |= self._service_ids(dirty)
        actual = self._retry.call(
            "consul.services", lambda: self._consul.services(owner=self._policy.hostname)
        )
        return self._apply(plan(self.desired(), actual, scope=scope), actual)

    def _service_ids(self, containers: Collection[ContainerID]) -> set[ServiceID]:
        return {
            s.id for c in containers if c in self._known for s in self._known[c].derivation.services
        }

    def _ensure_address(self) -> None:
        if self._policy.host_ip:
            return
        address = self._retry.call("consul.self", self._consul.advertise_address)
        if address != self._policy.advertise_address:
            self._policy = dataclasses.replace(self._policy, advertise_address=address)
            for known in self._known.values():
                known.derivation = self._derive(known.container)

    def _refresh_all(self, *, reinspect: bool) -> None:
        summaries = self._retry.call("docker.containers", self._docker.containers)
        current = {s.id: s for s in summaries}
        for gone in set(self._known) - set(current):
            del self._known[gone]
        for summary in summaries:
            known = self._known.get(summary.id)
            seen = known and (known.container.name, known.container.status)
            if reinspect or seen != (summary.name, summary.status):
                self._refresh(summary.id)

    def _refresh(self, container_id: ContainerID) -> None:
        try:
            container = self._retry.call(
                "docker.inspect", lambda: self._docker.inspect(container_id)
            )
        except DockerError as e:
            logger.warning("docker.inspect_failed", container=container_id[:12], error=str(e))
            return
        if container is None:
            self._known.pop(container_id, None)
            return
        previous = self._known.get(container_id)
        derivation = self._derive(container)
        if previous is None or previous.derivation.problems != derivation.problems:
            for p in derivation.problems:
                logger.warning(
                    "container.bad_declaration",
                    container=p.container,
                    key=p.key,
                    value=p.value,
                    reason=p.reason,
                )
        self._known[container_id] = _Known(container, derivation)

    def _derive(self, container: Container) -> Derivation:
        return derive(container, self._policy)

    def _apply(self, todo: Plan, actual: Mapping[ServiceID, Service]) -> Outcome:
        counts = {"service.registered": 0, "service.updated": 0, "service.deregistered": 0}
        errors: list[str] = []
        for service in todo.register:
            event = "service.updated" if service.id in actual else "service.registered"
            self._origin[service.id] = self._known[ContainerID(service.container)].container.name
            if self._write(event, service.id, errors, service):
                counts[event] += 1
        for service_id in todo.deregister:
            if self._write("service.deregistered", service_id, errors):
                counts["service.deregistered"] += 1
                self._origin.pop(service_id, None)
        return Outcome(
            todo,
            registered=counts["service.registered"],
            updated=counts["service.updated"],
            deregistered=counts["service.deregistered"],
            errors=tuple(errors),
        )

    def _write(
        self,
        event: str,
        service_id: ServiceID,
        errors: list[str],
        service: Service | None = None,
    ) -> bool:
        def write() -> None:
            if service is None:
                self._consul.deregister(service_id)
            else:
                self._consul.register(service)

        try:
            self._retry.call(event, write)
        except ConsulPermissionDenied as e:
            self._report_denied(e)
            errors.append(f"{service_id}: permission denied")
            return False
        except ConsulError as e:
            logger.error("consul.write_failed", service=service_id, error=str(e))
            errors.append(f"{service_id}: {e}")
            return False
        logger.info(event, service=service_id, container=self._origin.get(service_id, ""))
        return True

    def _report_denied(self, error: ConsulPermissionDenied) -> None:
        if not self._denied_reported:
            logger.error(
                "consul.permission_denied",
                error=str(error),
                hint="the ACL token needs service:write on the services registrator manages",
            )
            self._denied_reported = True
