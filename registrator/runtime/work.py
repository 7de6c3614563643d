"""What a reconcile is asked to do (the containers events named, or a full pass), and the
timers that ask for full passes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from registrator.core.model import ContainerID


@dataclass(frozen=True, slots=True)
class Changes:
    """Containers that events named since the last reconcile, and what the events said.

    `exited` maps those whose latest lifecycle event was `die` to the exit code it reported:
    that is all that changed, so they need no inspect. `network_only` holds those with
    nothing but network `connect`/`disconnect` events: those of a container not known to run
    are skipped (Docker sends them while it starts or cleans up a container).
    """

    containers: frozenset[ContainerID] = frozenset()
    exited: Mapping[ContainerID, int] = field(default_factory=dict)
    network_only: frozenset[ContainerID] = frozenset()


@dataclass(frozen=True, slots=True)
class FullPass:
    """A reconcile of everything this registrator owns.

    `docker=False` trusts what is known of the containers and only compares with the registry
    (the agent check); `reinspect` reads every container again (events may have been missed);
    `refresh` writes every driven TTL check again, which restarts its TTL.
    """

    docker: bool = True
    reinspect: bool = False
    refresh: bool = False

    def merge(self, other: FullPass) -> FullPass:
        return FullPass(
            docker=self.docker or other.docker,
            reinspect=self.reinspect or other.reinspect,
            refresh=self.refresh or other.refresh,
        )

    @property
    def scope(self) -> str:
        """The name metrics and logs give this pass: `full`, or `agent` for Consul only."""
        return "full" if self.docker else "agent"


@dataclass
class Timer:
    """A repeating deadline on the monotonic clock; an interval of 0 never fires."""

    interval: float
    due: float = field(init=False)

    def __post_init__(self) -> None:
        self.due = time.monotonic() + self.interval if self.interval > 0 else float("inf")

    def fire(self) -> bool:
        if time.monotonic() < self.due:
            return False
        self.due = time.monotonic() + self.interval
        return True
