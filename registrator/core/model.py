"""The small frozen types the rest of registrator speaks.

Docker's inspect dicts and Consul's JSON stop inside their adapters; everything in between
(derivation, planning, reconciling) sees only these, so "desired vs actual" is a plain
comparison of values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NewType

ContainerID = NewType("ContainerID", str)
ServiceID = NewType("ServiceID", str)

Protocol = Literal["tcp", "udp", "sctp"]

#: Meta key that marks a service as registered by a registrator; its value is the host identity.
OWNER_META_KEY = "registrator_host"


@dataclass(frozen=True, slots=True)
class Binding:
    """One host binding Docker reports for a container port."""

    host_ip: str
    host_port: int


@dataclass(frozen=True, slots=True)
class Port:
    """A container port: exposed, and published when it has bindings."""

    port: int
    protocol: Protocol
    bindings: tuple[Binding, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class Health:
    """Docker's view of a container's HEALTHCHECK: `starting`, `healthy` or `unhealthy`."""

    status: str
    #: what the last probe printed (Docker keeps the last few)
    output: str = ""


@dataclass(frozen=True, slots=True)
class Container:
    """What registrator needs to know of a container, translated from `docker inspect`."""

    id: ContainerID
    name: str
    image: str
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Docker's State.Status: created, running, paused, restarting, exited, dead
    status: str = "running"
    running: bool = True
    paused: bool = False
    exit_code: int = 0
    network_mode: str = "default"
    ports: tuple[Port, ...] = ()
    #: network name -> the container's address on it (IPv4, else global IPv6; "" when none)
    networks: Mapping[str, str] = field(default_factory=dict)
    #: with `network_mode` "container:<id>", that container: its network is this one's
    network_peer: Container | None = None
    #: Docker's HEALTHCHECK state; None when the container has no healthcheck
    health: Health | None = None
    #: the signal `docker stop` sends it (Config.StopSignal, as a number): SIGTERM unless set
    stop_signal: int = 15
    #: seconds `docker stop` waits for it before SIGKILL (Config.StopTimeout)
    stop_timeout: int = 10
    #: State.StartedAt: tells the same run from a restart
    started_at: str = ""
    #: it received its stop signal and still runs (set by the runtime: Docker records no such
    #: state, so a fresh inspect always says False)
    draining: bool = False

    @property
    def network_peer_id(self) -> ContainerID | None:
        """The container whose network this one shares (`--network container:<id>`), if any."""
        mode, _, peer = self.network_mode.partition(":")
        return ContainerID(peer) if mode == "container" and peer else None


@dataclass(frozen=True, slots=True)
class ContainerSummary:
    """A row of the container list: enough to notice a container changed without inspecting it."""

    id: ContainerID
    name: str
    status: str


#: A value in a check definition: a string, a flag, an argv (`Args`) or a header map
#: (`Header`: name -> values), kept as tuples so checks stay hashable.
CheckValue = str | bool | tuple[str, ...] | tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class Check:
    """A Consul check attached to a service.

    `definition` holds Consul's own field names (`HTTP`, `Interval`, ...). `kind` is what Consul
    reports as the check's `Type`. `status` is set only on the TTL checks whose status
    registrator itself drives (Docker's health, `--ttl`, an invalid declaration); Consul runs
    the others. Consul 1.8 reports a check back without its definition, so `notes` carries a
    digest of it: comparing `reported()` forms is how a check edited by hand is noticed.
    """

    id: str
    name: str
    kind: str
    definition: tuple[tuple[str, CheckValue], ...] = ()
    notes: str = ""
    status: str | None = None
    output: str = ""

    def reported(self) -> Check:
        """This check as the agent lists it back, without what the agent does not return."""
        return Check(self.id, self.name, self.kind, notes=self.notes)


@dataclass(frozen=True, slots=True)
class Service:
    """A service as registered in the Consul agent.

    `meta` is kept as sorted pairs so equality does not depend on order. `container` names the
    container a desired service comes from; Consul does not hold it, so it is not compared.
    """

    id: ServiceID
    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    checks: tuple[Check, ...] = ()
    #: maintenance mode and its reason ("" when not in maintenance): a paused container
    maintenance: str = ""
    container: str = field(default="", compare=False)

    @property
    def owner(self) -> str | None:
        return dict(self.meta).get(OWNER_META_KEY)


@dataclass(frozen=True, slots=True)
class Problem:
    """A piece of a container's declaration that cannot be honoured; it is logged and skipped."""

    container: str
    key: str
    value: str
    reason: str


@dataclass(frozen=True, slots=True)
class Derivation:
    """The services a container should have, and what was left out on the way and why."""

    services: tuple[Service, ...] = ()
    problems: tuple[Problem, ...] = ()
    #: (what, why) for ports or containers deliberately not registered; `explain` shows them
    skipped: tuple[tuple[str, str], ...] = ()
    #: a container that exited with an error under `-deregister on-success`: its services
    #: stay as they are registered, for the health check to catch
    kept: bool = False
    #: for a kept container first seen after it exited: the service ID prefix whose
    #: registered services are kept (its earlier services are unknown)
    adopt: str = ""
