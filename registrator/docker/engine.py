"""The Docker adapter: list, inspect and the event stream, over Docker's HTTP API.

Docker's dicts stop here: callers get `Container`, `ContainerSummary` and `Event`. Requests go
over kept-alive connections (`wire.Connections`), one per thread, to the endpoint the
environment names (`endpoint.py`). Paths carry no API version: the engine answers in its own,
and `inspect.py` copes with what differs between versions.

A Swarm task is inspected with what only the swarm knows: its service's labels (a manager can
read them, a worker cannot) and which of its networks is the routing mesh. Whether this node
is a manager is asked once, when the first task is seen after each (re)subscription to the
events; a node that runs no task never asks, so outside a swarm nothing changes.

Podman serves the same API with differences (`podman.py`): `connect` asks `/version` which
engine answers, and with Podman the event filter, the events and a pod's ports are made
Docker's; what cannot be is `limitations()`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from registrator.core.errors import DockerError, DockerUnavailable
from registrator.core.model import (
    Container,
    ContainerID,
    ContainerSummary,
    NetworkAddress,
    SwarmTask,
)
from registrator.docker import podman
from registrator.docker.endpoint import docker_endpoint
from registrator.docker.events import RELEVANT_ACTIONS, EventStream
from registrator.docker.inspect import container_from_inspect
from registrator.docker.pods import PodReader
from registrator.wire import TRANSPORT_ERRORS, Connections, path_segment


#: The events that can change registrations: a container's own, its networks', and a Swarm
#: service's `update` (only a manager receives those). Docker leaves out the rest (create,
#: exec_*, attach, resize...), so they cost nothing here. (With `health_status` among them
#: Docker matches actions by prefix: `health_status: healthy`.)
def event_filters(*, on_podman: bool = False) -> str:
    actions = podman.filter_names(RELEVANT_ACTIONS) if on_podman else RELEVANT_ACTIONS
    return json.dumps({"type": ["container", "network", "service"], "event": sorted(actions)})


EVENT_FILTERS = event_filters()


@dataclass(frozen=True, slots=True)
class _SwarmNode:
    """What this node is in its swarm, as far as inspecting tasks needs."""

    manager: bool
    #: the names of the routing mesh's networks (`ingress`, or one made with `--ingress`)
    ingress: frozenset[str]


class DockerEngine:
    """Talks to one Docker engine."""

    def __init__(self, connections: Connections, *, only_label: str = "") -> None:
        self._http = connections
        #: `--require-label`: the engine lists only containers carrying it, so a host running
        #: hundreds of other containers costs no inspect of theirs at start-up or resync
        self._only_label = only_label
        #: None until a task is inspected after each subscription to the events
        self._node: _SwarmNode | None = None
        #: Podman's pods, when it is Podman that answers (`connect` asks)
        self._pods: PodReader | None = None

    @classmethod
    def connect(
        cls, *, timeout: float = 30, only_label: str = "", env: Mapping[str, str] | None = None
    ) -> DockerEngine:
        """A client for the engine the environment names, once it answers; DockerUnavailable
        when nothing answers, ConfigError when the environment names no reachable engine.

        `only_label` (LABEL or LABEL=VALUE) limits the container list to those carrying it.
        """
        engine = cls(Connections(docker_endpoint(env), timeout=timeout), only_label=only_label)
        engine.ping()
        if podman.is_podman(engine._get("/version")):
            engine._pods = PodReader(engine._get)
        return engine

    def limitations(self) -> Mapping[str, str]:
        """What this engine's API cannot tell registrator (Podman's), by the feature it costs:
        logged once at start-up, shown by `explain`."""
        return podman.LIMITATIONS if self._pods is not None else {}

    def host_name(self) -> str:
        """The engine's host name: stable even when registrator itself runs in a container."""
        return str(self._get("/info").get("Name") or "")

    def ping(self) -> None:
        """Returns when the engine answers; raises DockerUnavailable when it does not."""
        self._get("/_ping", as_json=False)

    def containers(self) -> list[ContainerSummary]:
        path = "/containers/json?all=1"
        if self._only_label:
            path += "&filters=" + quote(json.dumps({"label": [self._only_label]}))
        rows = self._get(path)
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
        if found is not None and peer_id is not None:
            found = dataclasses.replace(found, network_peer=self._inspect_one(peer_id))
        if found is None or self._pods is None:
            return found
        return self._pods.with_own_ports(found)

    def _inspect_one(self, container: ContainerID) -> Container | None:
        data = self._get(f"/containers/{path_segment(container)}/json", missing_ok=True)
        if data is None:
            return None
        found = container_from_inspect(data)
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
            swarm = self._get("/info").get("Swarm") or {}
            active = swarm.get("LocalNodeState") == "active"
            ingress = {"ingress"}
            if active:
                overlay = quote(json.dumps({"driver": ["overlay"]}))
                rows = self._get(f"/networks?filters={overlay}")
                ingress |= {str(n.get("Name")) for n in rows if n.get("Ingress")}
            manager = active and bool(swarm.get("ControlAvailable"))
            self._node = _SwarmNode(manager=manager, ingress=frozenset(ingress))
        return self._node

    def _service_labels(self, service: str) -> dict[str, str] | None:
        """The Swarm service's labels; {} when it is gone, None when this is no manager now."""
        try:
            found = self._get(f"/services/{path_segment(service)}", missing_ok=True)
        except DockerError:
            self._node = None  # demoted since it was asked? ask again
            if self._swarm_node().manager:
                raise
            return None
        spec = (found or {}).get("Spec") or {}
        return {str(k): str(v) for k, v in (spec.get("Labels") or {}).items()}

    def events(self) -> EventStream:
        """Subscribe now: events from this moment on are delivered, none are missed after it.

        Each subscription (the first and every reconnect) forgets what this node was in its
        swarm: it may have joined, left, been promoted or demoted meanwhile.
        """
        self._node = None
        url = f"/events?filters={quote(event_filters(on_podman=self._pods is not None))}"
        try:
            stream = self._http.stream(url)
        except TRANSPORT_ERRORS as e:
            raise DockerUnavailable(f"cannot reach the Docker engine: {e}") from e
        if stream.status != 200:
            detail = stream.response.read(200).decode("utf-8", "replace")
            stream.close()
            raise _error(f"GET /events: {stream.status} {detail}", stream.status)
        return EventStream(stream, translate=podman.docker_event if self._pods else None)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, *, missing_ok: bool = False, as_json: bool = True) -> Any:
        try:
            answer = self._http.request("GET", path)
        except TRANSPORT_ERRORS as e:
            where = self._http.endpoint.base_url
            raise DockerUnavailable(f"cannot reach the Docker engine at {where}: {e}") from e
        if answer.status == 404 and missing_ok:
            return None
        if not answer.ok:
            raise _error(f"GET {path}: {answer.status} {answer.text.strip()[:200]}", answer.status)
        return answer.json() if as_json else answer.text


def _error(detail: str, status: int) -> DockerError:
    """A server error may pass (a daemon restarting); anything else is the request's fault."""
    return DockerUnavailable(detail) if status >= 500 else DockerError(detail)


def open_engine(
    env: Mapping[str, str] | None = None, *, timeout: float = 30, only_label: str = ""
) -> DockerEngine:
    """The container engine the environment names (`DOCKER_HOST` and the other `DOCKER_*`
    variables: Docker, or Podman's Docker-compatible socket), once it answers. The daemon,
    `--resync`, `explain` and the readiness probe all open theirs here."""
    return DockerEngine.connect(timeout=timeout, only_label=only_label, env=env)
