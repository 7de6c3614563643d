"""The Docker adapter: list, inspect and the event stream, over docker-py's low-level client.

Docker's dicts stop here: callers get `Container`, `ContainerSummary` and `Event`. The API
version is never pinned; docker-py negotiates it with the engine.

A Swarm task is inspected with what only the swarm knows: its service's labels (a manager can
read them, a worker cannot) and which of its networks is the routing mesh. Whether this node
is a manager is asked once, when the first task is seen after each (re)subscription to the
events; a node that runs no task never asks, so outside a swarm nothing changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions

from registrator.core.errors import DockerError, DockerUnavailable
from registrator.core.model import (
    Container,
    ContainerID,
    ContainerSummary,
    NetworkAddress,
    SwarmTask,
)
from registrator.docker.events import EventStream
from registrator.docker.inspect import container_from_inspect

#: Event types subscribed to. `service` events come only on a manager; elsewhere the filter
#: costs nothing.
EVENT_TYPES = ["container", "network", "service"]


@dataclass(frozen=True, slots=True)
class _SwarmNode:
    """What this node is in its swarm, as far as inspecting tasks needs."""

    manager: bool
    #: the names of the routing mesh's networks (`ingress`, or one made with `--ingress`)
    ingress: frozenset[str]


class DockerEngine:
    """Talks to one Docker engine."""

    def __init__(self, api: docker.APIClient, *, only_label: str = "") -> None:
        self._api = api
        #: `--require-label`: the engine lists only containers carrying it, so a host running
        #: hundreds of other containers costs no inspect of theirs at start-up or resync
        self._only_label = only_label
        #: None until a task is inspected after each subscription to the events
        self._node: _SwarmNode | None = None

    @classmethod
    def connect(cls, *, timeout: float = 30, only_label: str = "") -> DockerEngine:
        """A client from DOCKER_HOST and friends; raises DockerUnavailable if nothing answers.

        `only_label` (LABEL or LABEL=VALUE) limits the container list to those carrying it.
        """
        try:
            api = docker.APIClient(timeout=timeout, **docker.utils.kwargs_from_env())
            return cls(api, only_label=only_label)
        except docker.errors.DockerException as e:
            raise DockerUnavailable(f"cannot reach the Docker engine: {e}") from e

    def host_name(self) -> str:
        """The engine's host name: stable even when registrator itself runs in a container."""
        return str(self._call(self._api.info).get("Name") or "")

    def ping(self) -> None:
        """Returns when the engine answers; raises DockerUnavailable when it does not."""
        self._call(self._api.ping)

    def containers(self) -> list[ContainerSummary]:
        filters = {"label": [self._only_label]} if self._only_label else None
        rows = self._call(self._api.containers, all=True, filters=filters)
        return [
            ContainerSummary(
                id=ContainerID(row["Id"]),
                name=(row.get("Names") or ["/"])[0].lstrip("/"),
                status=str(row.get("State") or ""),
            )
            for row in rows
        ]

    def inspect(self, container: ContainerID) -> Container | None:
        """The container, or None when it no longer exists.

        A container started with `--network container:<id>` lives in that container's
        network: the peer is inspected too and carried along, so derivation sees it.
        """
        found = self._inspect_one(container)
        peer_id = found.network_peer_id if found is not None else None
        if found is None or peer_id is None:
            return found
        return dataclasses.replace(found, network_peer=self._inspect_one(peer_id))

    def _inspect_one(self, container: ContainerID) -> Container | None:
        try:
            found = container_from_inspect(self._call(self._api.inspect_container, container))
        except _Gone:
            return None
        if found.swarm is None:
            return found
        return dataclasses.replace(found, swarm=self._task(found.swarm, found.networks))

    def _task(self, task: SwarmTask, networks: Mapping[str, NetworkAddress]) -> SwarmTask:
        """The task with its service's labels (None on a worker) and its ingress networks."""
        node = self._swarm_node()
        labels = self._service_labels(task.service_id) if node.manager else None
        ingress = tuple(sorted(n for n in networks if n in node.ingress))
        return dataclasses.replace(task, service_labels=labels, ingress=ingress)

    def _swarm_node(self) -> _SwarmNode:
        if self._node is None:
            swarm = self._call(self._api.info).get("Swarm") or {}
            active = swarm.get("LocalNodeState") == "active"
            ingress = {"ingress"}
            if active:
                rows = self._call(self._api.networks, filters={"driver": "overlay"})
                ingress |= {str(n.get("Name")) for n in rows if n.get("Ingress")}
            manager = active and bool(swarm.get("ControlAvailable"))
            self._node = _SwarmNode(manager=manager, ingress=frozenset(ingress))
        return self._node

    def _service_labels(self, service: str) -> dict[str, str] | None:
        """The Swarm service's labels; {} when it is gone, None when this is no manager now."""
        try:
            spec = self._call(self._api.inspect_service, service).get("Spec") or {}
        except _Gone:
            return {}
        except DockerError:
            self._node = None  # demoted since it was asked? ask again
            if self._swarm_node().manager:
                raise
            return None
        return {str(k): str(v) for k, v in (spec.get("Labels") or {}).items()}

    def events(self) -> EventStream:
        """Subscribe now: events from this moment on are delivered, none are missed after it.

        Each subscription (the first and every reconnect) forgets what this node was in its
        swarm: it may have joined, left, been promoted or demoted meanwhile.
        """
        self._node = None
        stream = self._call(self._api.events, decode=True, filters={"type": EVENT_TYPES})
        return EventStream(stream)

    def close(self) -> None:
        self._api.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except docker.errors.NotFound as e:
            raise _Gone from e
        except docker.errors.APIError as e:
            if e.is_server_error():
                raise DockerUnavailable(str(e)) from e
            raise DockerError(str(e)) from e
        except (requests.exceptions.RequestException, OSError, docker.errors.DockerException) as e:
            raise DockerUnavailable(f"cannot reach the Docker engine: {e}") from e


class _Gone(DockerError):
    """The object asked for does not exist (404)."""
