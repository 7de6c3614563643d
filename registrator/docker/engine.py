"""The Docker adapter: list, inspect and the event stream, over docker-py's low-level client.

Docker's dicts stop here: callers get `Container`, `ContainerSummary` and `Event`. The API
version is never pinned; docker-py negotiates it with the engine.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import docker
import docker.errors
import requests.exceptions

from registrator.core.errors import DockerError, DockerUnavailable
from registrator.core.model import Container, ContainerID, ContainerSummary
from registrator.docker.events import EventStream
from registrator.docker.inspect import container_from_inspect


class DockerEngine:
    """Talks to one Docker engine."""

    def __init__(self, api: docker.APIClient) -> None:
        self._api = api

    @classmethod
    def connect(cls, *, timeout: float = 30) -> DockerEngine:
        """A client from DOCKER_HOST and friends; raises DockerUnavailable if nothing answers."""
        try:
            return cls(docker.APIClient(timeout=timeout, **docker.utils.kwargs_from_env()))
        except docker.errors.DockerException as e:
            raise DockerUnavailable(f"cannot reach the Docker engine: {e}") from e

    def host_name(self) -> str:
        """The engine's host name: stable even when registrator itself runs in a container."""
        return str(self._call(self._api.info).get("Name") or "")

    def ping(self) -> None:
        """Returns when the engine answers; raises DockerUnavailable when it does not."""
        self._call(self._api.ping)

    def containers(self) -> list[ContainerSummary]:
        rows = self._call(self._api.containers, all=True)
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
            return container_from_inspect(self._call(self._api.inspect_container, container))
        except _Gone:
            return None

    def events(self) -> EventStream:
        """Subscribe now: events from this moment on are delivered, none are missed after it."""
        stream = self._call(
            self._api.events, decode=True, filters={"type": ["container", "network"]}
        )
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
