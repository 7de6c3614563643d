"""What a reconcile is asked to do: the containers events named, or a full pass (which the
daemon's timers ask for when their deadline comes); and what the worker has collected for
the next one."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from registrator.core.events import NETWORK_CHANGES, ContainerEvent, Happened, ServiceUpdate
from registrator.core.model import ContainerID


@dataclass(frozen=True, slots=True)
class Changes:
    """Containers that events named since the last reconcile, and what the events said.

    `exited` maps those whose latest lifecycle event was `die` to the exit code it reported:
    that is all that changed, so they need no inspect. `network_only` holds those with
    nothing but network `connect`/`disconnect` events: those of a container not known to run
    are skipped (Docker sends them while it starts or cleans up a container).
    `signalled` maps containers to the signals `kill` events reported since their last start;
    those in `signal_only` had nothing but `kill` events: applied without an inspect, so a
    drain lands at once. `services` are Swarm services that were updated: their tasks on this
    node are read again.
    """

    containers: frozenset[ContainerID] = frozenset()
    exited: Mapping[ContainerID, int] = field(default_factory=dict)
    network_only: frozenset[ContainerID] = frozenset()
    signalled: Mapping[ContainerID, frozenset[int]] = field(default_factory=dict)
    signal_only: frozenset[ContainerID] = frozenset()
    services: frozenset[str] = frozenset()


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


#: Everything the worker's queue carries.
Item = ContainerEvent | ServiceUpdate | ContainerID | FullPass


@dataclass
class Pending:
    """What the worker owes: at most one full pass, plus the containers events named.

    `exited` holds the containers whose latest lifecycle event was `die`, with the exit code
    it reported. Only a `start` undoes that; the `disconnect` and `destroy` that follow a
    `die` do not. `network_only` holds those with nothing but network events pending.
    `signalled` holds the signals `kill` events reported since a container's last `start`
    (several: a `docker kill -s HUP` and a `docker stop` may come in one batch), and
    `signal_only` the containers with nothing but `kill` events pending; `services` the
    Swarm services updated.
    """

    full: FullPass | None = None
    containers: set[ContainerID] = field(default_factory=set)
    exited: dict[ContainerID, int] = field(default_factory=dict)
    network_only: set[ContainerID] = field(default_factory=set)
    signalled: dict[ContainerID, set[int]] = field(default_factory=dict)
    signal_only: set[ContainerID] = field(default_factory=set)
    services: set[str] = field(default_factory=set)

    def add(self, item: Item) -> None:
        if isinstance(item, str):
            self.containers.add(item)
            self.network_only.discard(item)
            self.signal_only.discard(item)
        elif isinstance(item, FullPass):
            self.full = item if self.full is None else self.full.merge(item)
        elif isinstance(item, ServiceUpdate):
            self.services.add(item.service)
        else:
            self._add_event(item)

    def changes(self) -> Changes:
        return Changes(
            frozenset(self.containers),
            dict(self.exited),
            frozenset(self.network_only),
            {c: frozenset(s) for c, s in self.signalled.items()},
            frozenset(self.signal_only),
            frozenset(self.services),
        )

    def _add_event(self, item: ContainerEvent) -> None:
        if item.happened is Happened.SIGNALLED:
            self._add_kill(item)
            return
        self.signal_only.discard(item.container)
        if item.happened in NETWORK_CHANGES:
            if item.container not in self.containers:
                self.network_only.add(item.container)
        else:
            self.network_only.discard(item.container)
        self.containers.add(item.container)
        if item.happened is Happened.EXITED and item.exit_code is not None:
            self.exited[item.container] = item.exit_code
        elif item.happened is Happened.STARTED:
            self.exited.pop(item.container, None)
            self.signalled.pop(item.container, None)

    def _add_kill(self, item: ContainerEvent) -> None:
        if item.container not in self.containers:
            self.signal_only.add(item.container)
        self.containers.add(item.container)
        if item.signal is not None:
            self.signalled.setdefault(item.container, set()).add(item.signal)

    def __bool__(self) -> bool:
        return self.full is not None or bool(self.containers) or bool(self.services)


@dataclass
class Timer:
    """A repeating deadline on `clock` (the monotonic one); an interval of 0 never fires."""

    interval: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    due: float = field(init=False)

    def __post_init__(self) -> None:
        self.due = self.clock() + self.interval if self.interval > 0 else float("inf")

    def fire(self) -> bool:
        now = self.clock()
        if now < self.due:
            return False
        self.due = now + self.interval
        return True
