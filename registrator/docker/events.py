"""Docker's event stream, translated: the container events that can change registrations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from registrator.core.errors import DockerUnavailable
from registrator.core.model import ContainerID
from registrator.wire import TRANSPORT_ERRORS, Stream

#: Docker event actions that can change what a container should have registered.
RELEVANT_ACTIONS = frozenset(
    {
        "start",
        "die",
        "destroy",
        "pause",
        "unpause",
        "rename",
        "health_status",
        "connect",
        "disconnect",
        "update",
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    """A Docker event about one container."""

    container: ContainerID
    action: str
    #: for `die`: the exit code Docker reports with it
    exit_code: int | None = None


def event_from_docker(raw: dict[str, Any]) -> Event | None:
    """The container event in a raw Docker event, or None when it cannot change registrations."""
    kind = raw.get("Type")
    action = str(raw.get("Action") or raw.get("status") or "").split(":", 1)[0]
    actor = raw.get("Actor") or {}
    if kind == "container":
        container = actor.get("ID") or raw.get("id")
    elif kind == "network":
        container = (actor.get("Attributes") or {}).get("container")
    else:
        return None
    if action not in RELEVANT_ACTIONS or not container:
        return None
    return Event(ContainerID(str(container)), action, _exit_code(raw))


def _exit_code(raw: dict[str, Any]) -> int | None:
    code = ((raw.get("Actor") or {}).get("Attributes") or {}).get("exitCode")
    try:
        return int(code) if raw.get("Action") == "die" and code is not None else None
    except (TypeError, ValueError):
        return None


class EventStream:
    """An open subscription to Docker's events (one JSON object a line); `close()` from
    another thread unblocks it."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[Event]:
        try:
            for line in self._stream.lines():
                event = event_from_docker(json.loads(line))
                if event is not None:
                    yield event
        except (*TRANSPORT_ERRORS, ValueError) as e:
            raise DockerUnavailable(f"event stream broke: {e}") from e

    def close(self) -> None:
        self._stream.close()
