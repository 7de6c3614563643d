"""What a reconcile is asked to do: the containers events named, or a full pass (which the
daemon's timers ask for when their deadline comes); and what the worker has collected for
the next one."""

from __future__ import annotations

import dataclasses
import enum
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


class FullPass(enum.Flag):
    """The kinds of a reconcile of everything this registrator owns; a pass owed twice is
    their union (`|`).

    Every pass reads the registry and compares (`REGISTRY` alone is the agent check, which
    trusts what is known of the containers); `DOCKER` lists the containers first (the
    resync); `REINSPECT` reads every container again (events may have been missed);
    `REFRESH` writes every driven TTL check again, which restarts its TTL.
    """

    REGISTRY = enum.auto()
    DOCKER = enum.auto()
    REINSPECT = enum.auto()
    REFRESH = enum.auto()
    RESYNC = REGISTRY | DOCKER
    AGENT_CHECK = REGISTRY

    @property
    def docker(self) -> bool:
        return FullPass.DOCKER in self

    @property
    def reinspect(self) -> bool:
        return FullPass.REINSPECT in self

    @property
    def refresh(self) -> bool:
        return FullPass.REFRESH in self

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
        """Fold `item` in (see `fold`)."""
        folded = fold(self, item)
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(folded, f.name))

    def changes(self) -> Changes:
        return Changes(
            frozenset(self.containers),
            dict(self.exited),
            frozenset(self.network_only),
            {c: frozenset(s) for c, s in self.signalled.items()},
            frozenset(self.signal_only),
            frozenset(self.services),
        )

    def __bool__(self) -> bool:
        return self.full is not None or bool(self.containers) or bool(self.services)


def fold(pending: Pending, item: Item) -> Pending:
    """What is owed once `item` comes after `pending`; `pending` itself is left as it was."""
    if isinstance(item, FullPass):
        full = item if pending.full is None else pending.full | item
        return dataclasses.replace(pending, full=full)
    if isinstance(item, ServiceUpdate):
        return dataclasses.replace(pending, services=pending.services | {item.service})
    if isinstance(item, str):
        return dataclasses.replace(
            pending,
            containers=pending.containers | {item},
            network_only=pending.network_only - {item},
            signal_only=pending.signal_only - {item},
        )
    if item.happened is Happened.SIGNALLED:
        return _fold_kill(pending, item)
    return _fold_event(pending, item)


def _fold_event(pending: Pending, item: ContainerEvent) -> Pending:
    c = item.container
    network_only = set(pending.network_only)
    if item.happened not in NETWORK_CHANGES:
        network_only.discard(c)
    elif c not in pending.containers:
        network_only.add(c)
    exited, signalled = dict(pending.exited), dict(pending.signalled)
    if item.happened is Happened.EXITED and item.exit_code is not None:
        exited[c] = item.exit_code
    elif item.happened is Happened.STARTED:
        exited.pop(c, None)
        signalled.pop(c, None)
    return dataclasses.replace(
        pending,
        containers=pending.containers | {c},
        exited=exited,
        network_only=network_only,
        signalled=signalled,
        signal_only=pending.signal_only - {c},
    )


def _fold_kill(pending: Pending, item: ContainerEvent) -> Pending:
    c = item.container
    signal_only = set(pending.signal_only)
    if c not in pending.containers:
        signal_only.add(c)
    signalled = {k: set(v) for k, v in pending.signalled.items()}
    if item.signal is not None:
        signalled.setdefault(c, set()).add(item.signal)
    return dataclasses.replace(
        pending, containers=pending.containers | {c}, signalled=signalled, signal_only=signal_only
    )


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
