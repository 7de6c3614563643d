"""The two seams the runtime works through: where containers come from, and the registry.

Adapters implement them (`docker.engine.DockerEngine`, `registries.consul.agent.ConsulAgent`);
unit tests pass simple fakes, which `tests/integration/test_registry_contract.py` holds to the
real agent's behaviour. A new registry is one new folder under `registries/` that implements
`Registry`; nothing here or elsewhere in the core changes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Protocol

from registrator.core.events import EngineEvent
from registrator.core.model import (
    Check,
    Container,
    ContainerID,
    ContainerSummary,
    Service,
    ServiceID,
)
from registrator.core.plan import Action


class ContainerSource(Protocol):
    """The container engine, as the reconcile path needs it."""

    def containers(self) -> list[ContainerSummary]:
        """Every container, running or not: enough to notice which ones changed."""

    def inspect(self, container: ContainerID) -> Container | None:
        """The container (with its network peer, for `container:<id>`), or None when gone."""


class Subscription(Protocol):
    """An open event stream; `close()` from another thread ends the iteration."""

    def __iter__(self) -> Iterator[EngineEvent]: ...
    def close(self) -> None: ...


class EventSource(Protocol):
    """The container engine, as the daemon's watcher needs it."""

    def events(self) -> Subscription: ...


class ContainerEngine(ContainerSource, EventSource, Protocol):
    """A container engine (Docker, or Podman through its Docker-compatible API): what the
    adapter in `docker/` gives the runtime, opened by `docker.engine.open_engine`."""


class Registry(Protocol):
    """A service registry that registrator keeps equal to what runs in Docker.

    Every method raises `RegistryUnavailable` when the registry does not answer (retried),
    `RegistryDenied` for a missing permission and `RegistryRefused` when it refuses what was
    sent (neither is retried). A registry that has no notion of a check or of maintenance
    leaves them out of `stored`, so the plan never asks it for them.
    """

    def advertise_address(self) -> str:
        """This host's address as the registry knows it ("" when it has no opinion)."""

    def node(self) -> str:
        """The name of the registry node that answered ("" for a registry without nodes).

        Services belong to the node they were registered through; the runtime compares this
        from pass to pass to notice that it is not talking to one node (a load balancer)."""

    def services(
        self,
        *,
        owner: str,
        ids: Collection[ServiceID] | None = None,
        with_checks: bool = True,
    ) -> dict[ServiceID, Service]:
        """The services marked as `owner`'s; with `ids`, only those; without `with_checks`,
        possibly without checks or maintenance state (for a caller that only removes)."""

    def stored(self, service: Service) -> Service | None:
        """`service` as this registry would hold it, for comparing with `services()`;
        None when it would not hold it at all."""

    def applied(self, action: Action, held: Service | None) -> Service | None:
        """Its copy of a service (`held`: as it was) once `action` is written; None when it
        holds none then. The runtime keeps its mirror of the registry with this."""

    def register(self, service: Service) -> None: ...

    def deregister(self, service: ServiceID) -> None:
        """Remove `service`; one already gone counts as removed."""

    def set_maintenance(self, service: ServiceID, *, enabled: bool, reason: str = "") -> None: ...

    def update_ttl(self, check: Check) -> None:
        """Set a TTL check's status and output (which restarts its TTL)."""
