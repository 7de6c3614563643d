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
Family = Literal["ipv4", "ipv6"]

#: Meta key that marks a service as registered by a registrator; its value is the host identity.
OWNER_META_KEY = "registrator_host"


@dataclass(frozen=True, slots=True)
class Binding:
    """One host binding Docker reports for a container port."""

    host_ip: str
    host_port: int


@dataclass(frozen=True, slots=True)
class NetworkAddress:
    """A container's addresses on one network: IPv4, global IPv6, either "" when it has none.

    Docker gives a container on an IPv6-enabled network both; which one is registered is the
    container's choice (`SERVICE_ADDRESS_FAMILY`), and both are sent as tagged addresses.
    """

    ipv4: str = ""
    ipv6: str = ""

    def of(self, family: Family) -> str:
        return self.ipv6 if family == "ipv6" else self.ipv4

    def __bool__(self) -> bool:
        return bool(self.ipv4 or self.ipv6)


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
class SwarmTask:
    """What makes a container a task of a Swarm service (its `com.docker.swarm.*` labels).

    `service_labels` are the Swarm service's own labels (`docker service create --label`);
    only a manager node can read them, so they are None on a worker.
    """

    service_id: str
    service_name: str
    task_id: str
    #: the replica's number (`web.2.<task>` -> "2"); "" for a task of a global service
    slot: str = ""
    service_labels: Mapping[str, str] | None = None
    #: the task's networks that are Swarm's routing mesh (`ingress`): never registered
    ingress: tuple[str, ...] = ()


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
    #: network name -> the container's addresses on it
    networks: Mapping[str, NetworkAddress] = field(default_factory=dict)
    #: with `network_mode` "container:<id>", that container: its network is this one's
    network_peer: Container | None = None
    #: Docker's HEALTHCHECK state; None when the container has no healthcheck
    health: Health | None = None
    #: the Swarm task this container runs; None for a plain container
    swarm: SwarmTask | None = None
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


#: A value in a check definition: a string, a flag, a count (`SuccessBeforePassing`), an argv
#: (`Args`) or a header map (`Header`: name -> values), kept as tuples so checks stay hashable.
CheckValue = str | bool | int | tuple[str, ...] | tuple[tuple[str, tuple[str, ...]], ...]


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
class TaggedAddress:
    """One of a service's Consul tagged addresses: `lan_ipv4` or `lan_ipv6`, and where."""

    key: str
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Weights:
    """Consul's DNS SRV weights of a service while its checks pass, and while one warns.

    Both are always sent (1 and 1 are Consul's own defaults), so what the agent reports back
    is exactly what was sent and never reads as a change.
    """

    passing: int = 1
    warning: int = 1


#: The agent registers a service's sidecar proxy under the service's ID with this suffix.
SIDECAR_SUFFIX = "-sidecar-proxy"


@dataclass(frozen=True, slots=True)
class Upstream:
    """A service the sidecar proxy makes reachable on a local port (mTLS beyond it)."""

    destination: str
    bind_port: int
    #: the destination's datacenter; "" for the proxy's own
    datacenter: str = ""
    bind_address: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Connect:
    """A service's place in Consul Connect: a native app (it speaks mTLS itself), or an app
    behind a sidecar proxy the agent registers beside it as `<id>-sidecar-proxy`.

    The sidecar comes and goes with its service: one registration writes both, the service's
    maintenance is the sidecar's too, and what the agent reports of the sidecar is read back
    into this value, so the pair is compared as one service.
    """

    native: bool = False
    upstreams: tuple[Upstream, ...] = ()
    #: where the proxy reaches the app (registrator's address rules)
    local_address: str = ""
    local_port: int = 0
    #: where the proxy listens, when not where the app is reached ("": the service's address)
    address: str = ""
    #: the proxy's port, 0 for one from the agent's sidecar range. Not compared: the agent
    #: reports the port it chose; a declared port is in the digest of the checks probing it
    port: int = field(default=0, compare=False)
    #: the proxy's checks; () for the ones Consul adds itself (TCP to the proxy, an alias)
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    """A service as registered in the Consul agent.

    `meta` is kept as sorted pairs so equality does not depend on order. `container` names the
    container a desired service comes from; Consul does not hold it, so it is not compared.
    `tagged_addresses` holds only the keys registrator manages (`lan_ipv4`, `lan_ipv6`), sorted;
    the ones Consul adds by itself (`wan_ipv4`, ...) are not registrator's to compare.
    """

    id: ServiceID
    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    checks: tuple[Check, ...] = ()
    tagged_addresses: tuple[TaggedAddress, ...] = ()
    weights: Weights = Weights()
    #: Consul's EnableTagOverride: tags edited in the catalog win over the registered ones
    enable_tag_override: bool = False
    #: maintenance mode and its reason ("" when not in maintenance): a paused container
    maintenance: str = ""
    #: Consul Connect: native, or behind a sidecar proxy; None for a service outside the mesh
    connect: Connect | None = None
    container: str = field(default="", compare=False)

    @property
    def sidecar_id(self) -> ServiceID | None:
        """The ID of the sidecar proxy the agent registers with this service, if it has one."""
        if self.connect is None or self.connect.native:
            return None
        return ServiceID(f"{self.id}{SIDECAR_SUFFIX}")


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
    #: a Connect key declared where Connect cannot be honoured (a Swarm task, a registry
    #: other than the Consul agent), "" when none was: the runtime says so once
    connect_ignored: str = ""
