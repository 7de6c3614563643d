"""Plan actions as people read them: `--resync --dry-run`, its summary, and `explain`."""

from __future__ import annotations

from collections.abc import Mapping

from registrator.core.plan import (
    Action,
    ClearMaintenance,
    Deregister,
    Register,
    SetMaintenance,
)

#: how summaries name each kind: (done, to do); the listed kinds always show, in this order
_DONE = ("service.registered", "service.updated", "service.deregistered")
_TODO = ("service.registered", "service.deregistered")
_WORDS = {
    "service.registered": ("registered", "to register"),
    "service.updated": ("updated", "to update"),
    "service.deregistered": ("deregistered", "to deregister"),
    "service.maintenance": ("put in maintenance", "to put in maintenance"),
    "service.maintenance_cleared": ("taken out of maintenance", "to take out of maintenance"),
    "check.status": ("check statuses set", "check statuses to set"),
    "check.refreshed": ("checks refreshed", "checks to refresh"),
}


def describe(action: Action) -> str:
    """`register h:web:80 (web at 10.0.0.5:32768)`, `deregister h:old:80`, ..."""
    if isinstance(action, Register):
        service = action.service
        verb = "update" if action.replaces else "register"
        return f"{verb} {service.id} ({service.name} at {service.address}:{service.port})"
    if isinstance(action, Deregister):
        return f"deregister {action.service_id}"
    if isinstance(action, SetMaintenance):
        return f"put {action.service_id} in maintenance ({action.reason})"
    if isinstance(action, ClearMaintenance):
        return f"take {action.service_id} out of maintenance"
    verb = "set" if action.changed else "refresh"
    return f"{verb} check {action.check.id} to {action.check.status}"


def summary(counts: Mapping[str, int], *, unchanged: int, conditional: bool = False) -> str:
    """`registered 2, updated 0, deregistered 1, unchanged 5`, or for a plan not carried out
    `2 to register, 1 to deregister, 5 unchanged`; other kinds only when there are any."""
    always = _TODO if conditional else _DONE
    kinds = [*always, *(k for k in _WORDS if k not in always and counts.get(k))]
    if conditional:
        parts = [f"{counts.get(k, 0)} {_WORDS[k][1]}" for k in kinds]
        return ", ".join([*parts, f"{unchanged} unchanged"])
    parts = [f"{_WORDS[k][0]} {counts.get(k, 0)}" for k in kinds]
    return ", ".join([*parts, f"unchanged {unchanged}"])
