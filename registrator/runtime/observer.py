"""The seam through which the reconcile path and the loops report what they did.

The reconciler and the daemon call an `Observer` at the few moments an operator wants counted
(a service written, an error, a reconcile finished, a peer back after an outage, progress of a
long pass, a container drained). They never import the metrics library: `metrics.Metrics` is
one observer, the `--resync` progress printer another, and the default does nothing, so unit
tests and other callers need not care.
"""

from __future__ import annotations

from typing import Literal, Protocol

Peer = Literal["docker", "registry"]


class Observer(Protocol):
    def written(self, event: str) -> None:
        """A plan action was carried out: `service.registered`, `.updated`, `.deregistered`,
        `.maintenance` or `.maintenance_cleared`."""

    def failed(self, kind: str) -> None:
        """Something went wrong; `kind` is the event name it was logged under."""

    def reconciled(self, *, scope: str, seconds: float, ok: bool) -> None:
        """A reconcile pass ended (`scope` full or containers); `ok` when nothing is owed."""

    def owned(self, count: int) -> None:
        """How many services in Consul carry this registrator's mark, after a reconcile."""

    def reconnected(self, peer: Peer) -> None:
        """`peer` answers again after it was lost."""

    def progress(self, stage: str, *, done: int, total: int) -> None:
        """`done` of `total` items of a pass's `stage` (inspect, write) are finished."""

    def drained(self, *, lifted: bool) -> None:
        """A container was drained at its stop signal; `lifted` when a drain was lifted
        because the container still ran at its deadline."""


class NullObserver:
    """Observes nothing: the default wherever no one is listening."""

    def written(self, event: str) -> None:
        pass

    def failed(self, kind: str) -> None:
        pass

    def reconciled(self, *, scope: str, seconds: float, ok: bool) -> None:
        pass

    def owned(self, count: int) -> None:
        pass

    def reconnected(self, peer: Peer) -> None:
        pass

    def progress(self, stage: str, *, done: int, total: int) -> None:
        pass

    def drained(self, *, lifted: bool) -> None:
        pass


NULL_OBSERVER: Observer = NullObserver()


class Observers:
    """Several observers as one (metrics and the progress printer, say)."""

    def __init__(self, *observers: Observer) -> None:
        self._all = observers

    def written(self, event: str) -> None:
        for o in self._all:
            o.written(event)

    def failed(self, kind: str) -> None:
        for o in self._all:
            o.failed(kind)

    def reconciled(self, *, scope: str, seconds: float, ok: bool) -> None:
        for o in self._all:
            o.reconciled(scope=scope, seconds=seconds, ok=ok)

    def owned(self, count: int) -> None:
        for o in self._all:
            o.owned(count)

    def reconnected(self, peer: Peer) -> None:
        for o in self._all:
            o.reconnected(peer)

    def progress(self, stage: str, *, done: int, total: int) -> None:
        for o in self._all:
            o.progress(stage, done=done, total=total)

    def drained(self, *, lifted: bool) -> None:
        for o in self._all:
            o.drained(lifted=lifted)
