"""Prometheus metrics: an `Observer` that counts what the reconcile path and the loops report.

A registry of its own (not prometheus_client's global one), so two instances never share
counts. Every labelled series an operator alerts on is created at zero up front: `rate()` and
`absent()` work before the first error rather than after it.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from registrator import __version__
from registrator.runtime.observer import Peer

#: Error kinds (the event names they are logged under) shown at zero before they first happen.
ERROR_KINDS = (
    "reconcile.failed",
    "registry.write_failed",
    "registry.permission_denied",
    "docker.inspect_failed",
    "docker.events.broken",
    "docker.events.closed",
    "container.bad_declaration",
    "registry.refused",
    "registry.agent_changed",
)
#: The names these series had before the runtime spoke of any registry, not only Consul: each
#: is counted under both until the release after 0.2 (README, Metrics).
ALIASES = {
    "registry.write_failed": "consul.write_failed",
    "registry.permission_denied": "consul.permission_denied",
    "registry": "consul",
}
#: Plan actions (by kind) counted, each in a counter of its own.
_WRITES = {
    "service.registered": "registrations",
    "service.updated": "updates",
    "service.deregistered": "deregistrations",
    "service.maintenance": "maintenance_set",
    "service.maintenance_cleared": "maintenance_cleared",
}
#: Drains (False) and lifted drains (True): name and help of their counters.
_DRAINS = {
    False: ("drains", "Containers whose services were drained at their stop signal"),
    True: ("drains_lifted", "Drains lifted: the container still ran StopTimeout + 5 s later"),
}
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """registrator's metrics, and whether a first reconcile has completed (for /readyz)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.first_reconcile = threading.Event()
        self._writes = {
            event: Counter(
                f"registrator_{name}",
                f"Plan actions carried out: {event}",
                registry=self.registry,
            )
            for event, name in _WRITES.items()
        }
        self._errors = Counter(
            "registrator_errors",
            "Errors by kind: the event name each is logged under",
            ["kind"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "registrator_reconcile_duration_seconds",
            "Time one reconcile pass took, by scope: full, agent (Consul only) or containers",
            ["scope"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._reconnects = Counter(
            "registrator_reconnects",
            "Times Docker's event stream or the Consul agent came back after being lost",
            ["peer"],
            registry=self.registry,
        )
        self._drains = {
            lifted: Counter(f"registrator_{name}", text, registry=self.registry)
            for lifted, (name, text) in _DRAINS.items()
        }
        self._owned = Gauge(
            "registrator_services_owned",
            "Services in the Consul agent carrying this registrator's ownership mark",
            registry=self.registry,
        )
        self._declare_series()

    def _declare_series(self) -> None:
        for kind in ERROR_KINDS:
            for label in _with_alias(kind):
                self._errors.labels(kind=label)
        for scope in ("full", "agent", "containers"):
            self._duration.labels(scope=scope)
        for peer in ("docker", "registry"):
            for label in _with_alias(peer):
                self._reconnects.labels(peer=label)
        Info("registrator_build", "registrator's version", registry=self.registry).info(
            {"version": __version__}
        )

    def written(self, event: str) -> None:
        counter = self._writes.get(event)
        if counter is not None:
            counter.inc()

    def failed(self, kind: str) -> None:
        for label in _with_alias(kind):
            self._errors.labels(kind=label).inc()

    def reconciled(self, *, scope: str, seconds: float, ok: bool) -> None:
        self._duration.labels(scope=scope).observe(seconds)
        if ok and scope == "full":
            self.first_reconcile.set()

    def owned(self, count: int) -> None:
        self._owned.set(count)

    def reconnected(self, peer: Peer) -> None:
        for label in _with_alias(peer):
            self._reconnects.labels(peer=label).inc()

    def progress(self, stage: str, *, done: int, total: int) -> None:
        pass

    def drained(self, *, lifted: bool) -> None:
        self._drains[lifted].inc()


def _with_alias(name: str) -> tuple[str, ...]:
    """`name`, and the name its series had before, while that is still counted too."""
    alias = ALIASES.get(name)
    return (name,) if alias is None else (name, alias)
