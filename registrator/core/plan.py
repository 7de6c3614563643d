"""Desired vs actual -> the writes that make Consul match. Pure.

`actual` must already be restricted to services this registrator owns (its ownership mark and
host identity): the plan can only ever remove what it is handed, so a service registered by a
person, another tool or another registrator can never end up in `deregister`.

Services are compared with their checks as the agent reports them back (ID, name, type and
notes, which carry a digest of the definition). The status of the TTL checks registrator
drives is compared apart: a new status is one small check update, not a re-registration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from registrator.core.model import Check, Service, ServiceID


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """Set a driven TTL check's status and output; `changed` is False for a mere TTL refresh."""

    service: ServiceID
    check: Check
    changed: bool = True


@dataclass(frozen=True, slots=True)
class Plan:
    """What to write: `register` new or changed services, `deregister` stale ones, `statuses`."""

    register: tuple[Service, ...] = ()
    deregister: tuple[ServiceID, ...] = ()
    unchanged: int = 0
    statuses: tuple[StatusUpdate, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.register and not self.deregister and not self.statuses


def plan(
    desired: Mapping[ServiceID, Service],
    actual: Mapping[ServiceID, Service],
    *,
    scope: Collection[ServiceID] | None = None,
    refresh: bool = False,
) -> Plan:
    """Compare `desired` with `actual`; with `scope`, only those service IDs are considered.

    A scoped plan is what an event produces (only the containers it names); a full plan, what
    start-up and resync produce, also removes owned services nothing desires any more. With
    `refresh`, every driven check is re-asserted, which restarts its TTL in Consul.
    """
    ids = sorted(set(desired) | set(actual) if scope is None else set(scope))
    wanted = [i for i in ids if i in desired]
    same = {i for i in wanted if i in actual and reported(actual[i]) == reported(desired[i])}
    return Plan(
        register=tuple(desired[i] for i in wanted if i not in same),
        deregister=tuple(i for i in ids if i in actual and i not in desired),
        unchanged=len(same),
        statuses=tuple(
            update
            for i in wanted
            for update in _statuses(desired[i], actual.get(i), refresh=refresh)
        ),
    )


def reported(service: Service) -> Service:
    """`service` as the agent reports it back: checks without definition, status or output."""
    checks = sorted((c.reported() for c in service.checks), key=lambda c: c.id)
    return dataclasses.replace(service, checks=tuple(checks))


def _statuses(desired: Service, actual: Service | None, *, refresh: bool) -> list[StatusUpdate]:
    current = {c.id: (c.status, c.output) for c in actual.checks} if actual else {}
    updates = []
    for check in desired.checks:
        if check.status is None:
            continue
        changed = current.get(check.id) != (check.status, check.output)
        if changed or refresh:
            updates.append(StatusUpdate(desired.id, check, changed=changed))
    return updates
