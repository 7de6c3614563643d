"""What an engine says happened, in registrator's own words. Pure.

The engine adapter (`docker/events.py`, for Docker and Podman alike) turns the engine's event
stream into these; the runtime folds them into pending work (`runtime/work.py`) and never
reads an engine's own action strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from registrator.core.model import ContainerID


class Happened(StrEnum):
    """What happened to a container, as far as its registrations go."""

    STARTED = "started"
    EXITED = "exited"
    REMOVED = "removed"
    PAUSED = "paused"
    UNPAUSED = "unpaused"
    RENAMED = "renamed"
    HEALTH_CHANGED = "health_changed"
    CONNECTED = "connected"  # to a network
    DISCONNECTED = "disconnected"
    UPDATED = "updated"
    SIGNALLED = "signalled"  # sent a signal: the stop signal starts a drain


#: The engine sends these while it starts or cleans up a container too, not only when a user
#: connects one to a network.
NETWORK_CHANGES = frozenset({Happened.CONNECTED, Happened.DISCONNECTED})


@dataclass(frozen=True, slots=True)
class ContainerEvent:
    """Something happened to one container."""

    container: ContainerID
    happened: Happened
    #: when it exited: the exit code the engine reports with it
    exit_code: int | None = None
    #: when it was signalled: the signal's number (`docker stop`, `docker kill -s`)
    signal: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceUpdate:
    """A Swarm service changed (`docker service update`): its tasks here are derived again.

    Only a manager receives these. Creating or removing a service needs none: its tasks start
    and stop, and their container events say so.
    """

    service: str


#: What an engine's event stream yields.
EngineEvent = ContainerEvent | ServiceUpdate
