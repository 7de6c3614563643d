"""Drains in progress: which containers received their stop signal and still run, and when
each drain is lifted if the container does not stop after all (a monotonic deadline: its stop
timeout plus `drain.GRACE`). Docker records none of this.

An immutable value: each change makes a new one (`KnownContainers` keeps the latest), so it
is read from any thread without a lock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from loguru import logger

from registrator.core.drain import Drain, drain_for, lifted_after, signal_name
from registrator.core.model import Container, ContainerID, Derivation
from registrator.core.policy import Policy


@dataclass(frozen=True, slots=True)
class Drains:
    #: containers draining -> when their drain is lifted if they still run (monotonic)
    deadlines: Mapping[ContainerID, float] = field(default_factory=dict)

    def started(self, container: Container, now: float) -> Drains:
        return Drains({**self.deadlines, container.id: now + lifted_after(container)})

    def stopped(self, container: ContainerID) -> Drains:
        if container not in self.deadlines:
            return self
        return Drains({c: d for c, d in self.deadlines.items() if c != container})

    def deadline(self) -> float | None:
        """When the next drain is due to be lifted, if any is in progress."""
        return min(self.deadlines.values(), default=None)

    def due(self, now: float) -> list[ContainerID]:
        return [c for c, deadline in self.deadlines.items() if deadline <= now]


def drain_started(
    container: Container, derivation: Derivation, signals: Collection[int], policy: Policy
) -> Drain | None:
    """The drain these signals start, or None: not its stop signal, draining already, nothing
    registered (not running, ignored, not ours), or drains are off for it."""
    if container.stop_signal not in signals or container.draining:
        return None
    if not derivation.services:
        return None
    drain = drain_for(container, policy)
    if drain.mode == "off":
        logger.debug("container.not_drained", container=container.name, why=drain.source)
        return None
    return drain


def log_draining(container: Container, drain: Drain) -> None:
    logger.info(
        "container.draining",
        container=container.name,
        signal=signal_name(container.stop_signal),
        mode=drain.mode,
        lifted_after=lifted_after(container),
    )


def log_lifted(container: Container) -> None:
    logger.warning(
        "container.drain_lifted",
        container=container.name,
        after=lifted_after(container),
        reason="still running after its stop timeout: it was not being stopped",
    )
