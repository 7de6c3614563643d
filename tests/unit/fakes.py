"""In-memory stand-ins for Docker and Consul, for unit tests of the reconcile logic only.

The integration suite never uses these: it talks to the real daemon and agent.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace

from registrator.core.durations import DurationError, nanoseconds
from registrator.core.errors import RegistryError, RegistryRefused, RegistryUnavailable
from registrator.core.events import EngineEvent
from registrator.core.model import (
    OWNER_META_KEY,
    SIDECAR_SUFFIX,
    Check,
    Connect,
    Container,
    ContainerID,
    ContainerSummary,
    Service,
    ServiceID,
)
from registrator.core.plan import Action
from registrator.registries.consul.held import applied, reported


@dataclass
class FakeDocker:
    containers_by_id: dict[ContainerID, Container] = field(default_factory=dict)
    inspected: list[ContainerID] = field(default_factory=list)

    def add(self, container: Container) -> None:
        self.containers_by_id[container.id] = container

    def containers(self) -> list[ContainerSummary]:
        return [ContainerSummary(c.id, c.name, c.status) for c in self.containers_by_id.values()]

    def inspect(self, container: ContainerID) -> Container | None:
        """As the engine adapter does: the network peer of a `container:<id>` one comes along."""
        self.inspected.append(container)
        found = self.containers_by_id.get(container)
        peer = found.network_peer_id if found is not None else None
        if found is None or peer is None:
            return found
        return replace(found, network_peer=self.containers_by_id.get(peer))


@dataclass
class FakeClock:
    """A monotonic clock that moves only when told to. It starts where the real one stands:
    what the daemon does not take it from (a drain's start) reads the real one."""

    now: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeEvents:
    """Docker's event stream, one subscription at a time: `push` sends it an event; `close`
    (the daemon's, on stop) ends it, as closing the real stream does."""

    def __init__(self) -> None:
        self._items: queue.Queue[EngineEvent | None] = queue.Queue()
        self.subscribed = threading.Event()
        self.closed = threading.Event()

    def events(self) -> FakeEvents:
        self.subscribed.set()
        return self

    def push(self, event: EngineEvent) -> None:
        self._items.put(event)

    def __iter__(self) -> Iterator[EngineEvent]:
        while (item := self._items.get()) is not None:
            yield item

    def close(self) -> None:
        self.closed.set()
        self._items.put(None)


@dataclass
class FakeConsul:
    registered: dict[ServiceID, Service] = field(default_factory=dict)
    writes: int = 0
    #: the `ids` of each services() read (None: all of them)
    reads: list[frozenset[ServiceID] | None] = field(default_factory=list)
    reads_without_checks: int = 0
    down: bool = False
    address: str = "10.9.9.9"
    #: the agent's node name; a test changes it to play a load balancer in front of agents
    node_name: str = "node-1"
    #: service ID -> the sidecar proxy the agent registered with it, and that sidecar's
    #: maintenance reason: kept apart, as the agent keeps `<id>-sidecar-proxy`
    sidecars: dict[ServiceID, tuple[Connect, str]] = field(default_factory=dict)

    def _check(self) -> None:
        if self.down:
            raise RegistryUnavailable("agent down")

    def advertise_address(self) -> str:
        self._check()
        return self.address

    def node(self) -> str:
        self._check()
        return self.node_name

    def services(
        self,
        *,
        owner: str | None = None,
        ids: Collection[ServiceID] | None = None,
        with_checks: bool = True,
    ) -> dict[ServiceID, Service]:
        self._check()
        self.reads.append(None if ids is None else frozenset(ids))
        found = {
            k: self._with_sidecar(v)
            for k, v in self.registered.items()
            if owner in {None, dict(v.meta).get(OWNER_META_KEY)} and (ids is None or k in ids)
        }
        if with_checks:
            return found
        self.reads_without_checks += 1
        return {k: replace(v, checks=(), maintenance="") for k, v in found.items()}

    def _with_sidecar(self, service: Service) -> Service:
        """As the agent's adapter reads a sidecar back: into its service, maintenance joined."""
        if service.id not in self.sidecars:
            return service
        connect, its = self.sidecars[service.id]
        own = service.maintenance
        both = own if own == its else f"{own or 'none'} (its sidecar: {its or 'none'})"
        return replace(service, connect=connect, maintenance=both)

    def _parent_of(self, sidecar: ServiceID) -> ServiceID | None:
        parent = ServiceID(sidecar.removesuffix(SIDECAR_SUFFIX))
        return parent if parent != sidecar and parent in self.sidecars else None

    def stored(self, service: Service) -> Service:
        return reported(service)

    def applied(self, action: Action, held: Service | None) -> Service | None:
        return applied(action, held, self.stored)

    def register(self, service: Service) -> None:
        self._check()
        _refuse_bad_durations(service)
        self.writes += 1
        # a re-registration ends maintenance mode (the agent replaces the service's checks,
        # its maintenance check among them) but keeps a TTL check's status; checks are
        # reported back without their definition; the container is not stored
        before = self.registered.get(service.id)
        connect = service.connect
        if connect is not None and not connect.native:
            # the agent registers the sidecar; registered without one, it leaves the old one
            checks = _as_agent_keeps(connect.checks, ())
            self.sidecars[service.id] = (replace(connect, checks=checks), "")
            connect = None
        self.registered[service.id] = replace(
            service,
            container="",
            maintenance="",
            connect=connect,
            checks=_as_agent_keeps(service.checks, before.checks if before else ()),
        )

    def update_ttl(self, check: Check) -> None:
        self._check()
        self.writes += 1
        for sid, service in self.registered.items():
            if any(c.id == check.id for c in service.checks):
                checks = tuple(
                    replace(c, status=check.status, output=check.output) if c.id == check.id else c
                    for c in service.checks
                )
                self.registered[sid] = replace(service, checks=checks)
                return
        raise RegistryError(f"CheckID {check.id!r} does not have associated TTL")

    def set_maintenance(self, service: ServiceID, *, enabled: bool, reason: str = "") -> None:
        self._check()
        self.writes += 1
        parent = self._parent_of(service)
        if parent is not None:
            connect, _ = self.sidecars[parent]
            self.sidecars[parent] = (connect, (reason or "maintenance") if enabled else "")
            return
        self.registered[service] = replace(
            self.registered[service], maintenance=(reason or "maintenance") if enabled else ""
        )

    def deregister(self, service: ServiceID) -> None:
        """The agent removes a service's sidecar with it."""
        self._check()
        self.writes += 1
        parent = self._parent_of(service)
        self.sidecars.pop(parent if parent is not None else service, None)
        if parent is None:
            self.registered.pop(service, None)


def _as_agent_keeps(checks: tuple[Check, ...], before: tuple[Check, ...]) -> tuple[Check, ...]:
    kept = {c.id: c for c in before}
    return tuple(
        replace(
            c.reported(),
            status=kept[c.id].status if c.id in kept else (c.status or "critical"),
            output=kept[c.id].output if c.id in kept else "",
        )
        for c in checks
    )


#: Check fields the agent parses as Go durations (an int64 of nanoseconds).
_DURATIONS = ("Interval", "Timeout", "TTL", "DeregisterCriticalServiceAfter")


def _refuse_bad_durations(service: Service) -> None:
    """The agent answers 400 for a duration Go cannot parse, as one too large for an int64
    (the core's parser, checked against the agent, says which)."""
    for check in service.checks:
        for key, value in check.definition:
            if key not in _DURATIONS or not isinstance(value, str):
                continue
            try:
                nanoseconds(value)
            except DurationError as e:
                detail = f"PUT /v1/agent/service/register: 400 invalid duration {value}: {e}"
                raise RegistryRefused(detail) from e


def compared(services: Mapping[ServiceID, Service]) -> dict[ServiceID, Service]:
    """`services` as far as a plan compares them (`reported`): how a mirror of the agent is
    checked against the fake agent's own copy."""
    return {sid: reported(s) for sid, s in services.items()}
