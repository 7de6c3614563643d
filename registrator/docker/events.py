"""Docker's event stream, translated: the container events that can change registrations,
and the Swarm service updates that can (a service's labels are part of its tasks' keys)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from registrator.core.drain import signal_number
from registrator.core.errors import DockerUnavailable
from registrator.core.events import ContainerEvent, EngineEvent, Happened, ServiceUpdate
from registrator.core.model import ContainerID
from registrator.wire import TRANSPORT_ERRORS, Stream

#: Docker's event actions that can change what a container should have registered, in
#: registrator's words (Podman's compatible API says the same once `podman.docker_event` has
#: translated its own).
HAPPENED = {
    "start": Happened.STARTED,
    "die": Happened.EXITED,
    "destroy": Happened.REMOVED,
    "pause": Happened.PAUSED,
    "unpause": Happened.UNPAUSED,
    "rename": Happened.RENAMED,
    "health_status": Happened.HEALTH_CHANGED,
    "connect": Happened.CONNECTED,
    "disconnect": Happened.DISCONNECTED,
    "update": Happened.UPDATED,
    "kill": Happened.SIGNALLED,
}
#: the actions asked of Docker's event filter
RELEVANT_ACTIONS = frozenset(HAPPENED)


def event_from_docker(raw: dict[str, Any]) -> EngineEvent | None:
    """The event in a raw Docker event, or None when it cannot change registrations."""
    kind = raw.get("Type")
    action = str(raw.get("Action") or raw.get("status") or "").split(":", 1)[0]
    actor = raw.get("Actor") or {}
    if kind == "service":
        service = str(actor.get("ID") or "")
        return ServiceUpdate(service) if service and action == "update" else None
    if kind == "container":
        container = actor.get("ID") or raw.get("id")
    elif kind == "network":
        container = (actor.get("Attributes") or {}).get("container")
    else:
        return None
    happened = HAPPENED.get(action)
    if happened is None or not container:
        return None
    return ContainerEvent(ContainerID(str(container)), happened, _exit_code(raw), _signal(raw))


def _exit_code(raw: dict[str, Any]) -> int | None:
    code = ((raw.get("Actor") or {}).get("Attributes") or {}).get("exitCode")
    try:
        return int(code) if raw.get("Action") == "die" and code is not None else None
    except (TypeError, ValueError):
        return None


def _signal(raw: dict[str, Any]) -> int | None:
    """Docker writes the number ("15"); a name is read too, anything else is None."""
    sent = ((raw.get("Actor") or {}).get("Attributes") or {}).get("signal")
    if raw.get("Action") != "kill" or sent is None:
        return None
    return signal_number(str(sent))


#: an event as the engine sent it -> as Docker would have (Podman's: `podman.docker_event`)
Translate = Callable[[Mapping[str, Any]], dict[str, Any]]


class EventStream:
    """An open subscription to Docker's events (one JSON object a line); `close()` from
    another thread unblocks it."""

    def __init__(self, stream: Stream, *, translate: Translate | None = None) -> None:
        self._stream = stream
        self._translate = translate

    def __iter__(self) -> Iterator[EngineEvent]:
        try:
            for line in self._stream.lines():
                raw = json.loads(line)
                event = event_from_docker(self._translate(raw) if self._translate else raw)
                if event is not None:
                    yield event
        except (*TRANSPORT_ERRORS, ValueError) as e:
            raise DockerUnavailable(f"event stream broke: {e}") from e

    def close(self) -> None:
        self._stream.close()
