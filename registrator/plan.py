"""Desired vs actual -> the writes that make Consul match. Pure.

`actual` must already be restricted to services this registrator owns (its ownership mark and
host identity): the plan can only ever remove what it is handed, so a service registered by a
person, another tool or another registrator can never end up in `deregister`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from registrator.model import Service, ServiceID


@dataclass(frozen=True, slots=True)
class Plan:
    """What to write: `register` new or changed services, `deregister` stale ones."""

    register: tuple[Service, ...] = ()
    deregister: tuple[ServiceID, ...] = ()
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not self.register and not self.deregister


def plan(
    desired: Mapping[ServiceID, Service],
    actual: Mapping[ServiceID, Service],
    *,
    scope: Collection[ServiceID] | None = None,
) -> Plan:
    """Compare `desired` with `actual`; with `scope`, only those service IDs are considered.

    A scoped plan is what an event produces (only the containers it names); a full plan, what
    start-up and resync produce, also removes owned services nothing desires any more.
    """
    ids = set(desired) | set(actual) if scope is None else set(scope)
    register = [desired[i] for i in sorted(ids) if i in desired and actual.get(i) != desired[i]]
    deregister = [i for i in sorted(ids) if i in actual and i not in desired]
    unchanged = sum(1 for i in ids if i in desired and actual.get(i) == desired[i])
    return Plan(tuple(register), tuple(deregister), unchanged)
