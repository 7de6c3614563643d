"""The Docker adapter: list, inspect and the event stream, over Docker's HTTP API.

Docker's dicts stop here: callers get `Container`, `ContainerSummary` and `Event`. Requests go
over kept-alive connections (`wire.Connections`), one per thread, to the endpoint the
environment names (`endpoint.py`). Paths carry no API version: the engine answers in its own,
and `inspect.py` copes with what differs between versions.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from registrator.core.errors import DockerError, DockerUnavailable
from registrator.core.model import Container, ContainerID, ContainerSummary
from registrator.docker.endpoint import docker_endpoint
from registrator.docker.events import RELEVANT_ACTIONS, EventStream
from registrator.docker.inspect import container_from_inspect
from registrator.wire import TRANSPORT_ERRORS, Connections, path_segment

#: The events that can change registrations: a container's own, and its networks'. Docker
#: leaves out the rest (create, kill, exec_*, attach, resize...), so they cost nothing here.
#: (With `health_status` among them Docker matches actions by prefix: `health_status: healthy`.)
EVENT_FILTERS = json.dumps({"type": ["container", "network"], "event": sorted(RELEVANT_ACTIONS)})


class DockerEngine:
    """Talks to one Docker engine."""

    def __init__(self, connections: Connections) -> None:
        self._http = connections

    @classmethod
    def connect(cls, *, timeout: float = 30, env: Mapping[str, str] | None = None) -> DockerEngine:
        """A client for the engine the environment names, once it answers; DockerUnavailable
        when nothing answers, ConfigError when the environment names no reachable engine."""
        engine = cls(Connections(docker_endpoint(env), timeout=timeout))
        engine.ping()
        return engine

    def host_name(self) -> str:
        """The engine's host name: stable even when registrator itself runs in a container."""
        return str(self._get("/info").get("Name") or "")

    def ping(self) -> None:
        """Returns when the engine answers; raises DockerUnavailable when it does not."""
        self._get("/_ping", as_json=False)

    def containers(self) -> list[ContainerSummary]:
        rows = self._get("/containers/json?all=1")
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
        data = self._get(f"/containers/{path_segment(container)}/json", missing_ok=True)
        return None if data is None else container_from_inspect(data)

    def events(self) -> EventStream:
        """Subscribe now: events from this moment on are delivered, none are missed after it."""
        url = f"/events?filters={quote(EVENT_FILTERS)}"
        try:
            stream = self._http.stream(url)
        except TRANSPORT_ERRORS as e:
            raise DockerUnavailable(f"cannot reach the Docker engine: {e}") from e
        if stream.status != 200:
            detail = stream.response.read(200).decode("utf-8", "replace")
            stream.close()
            raise _error(f"GET /events: {stream.status} {detail}", stream.status)
        return EventStream(stream)

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
