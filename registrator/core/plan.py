"""Desired vs actual -> the actions that make the registry match. Pure.

The plan is data: a tuple of typed actions that the runtime executes in order and never
second-guesses. `--resync --dry-run` prints them, logs and metrics count them by kind, and
`explain` shows the actions for one container, because the daemon and `explain` both call
`plan`.

`actual` must already be restricted to services this registrator owns (its ownership mark and
host identity): the plan can only ever remove what it is handed, so a service registered by a
person, another tool or another registrator can never end up in a `Deregister`.

Services are compared as the registry stores them (`stored`): for the Consul agent that is the
service with its checks as the agent reports them back (ID, name, type and notes, which carry
a digest of the definition), and without its tags when it lets the catalog override them; a
key-value registry keeps less. The status of the TTL checks
registrator drives is compared apart: a new status is one small check update, not a
re-registration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from registrator.core.model import Check, Service, ServiceID

#: How a registry holds a service: what comparing with it can see; None when the registry
#: would not hold the service at all (a key-value registry drops a paused or unhealthy one).
Stored = Callable[[Service], Service | None]


@dataclass(frozen=True, slots=True)
class Register:
    """Write `service` whole; `replaces` when the registry holds an older version of it."""

    service: Service
    replaces: bool = False

    @property
    def kind(self) -> str:
        return "service.updated" if self.replaces else "service.registered"

    @property
    def service_id(self) -> ServiceID:
        return self.service.id


@dataclass(frozen=True, slots=True)
class Deregister:
    """Remove a service this registrator owns and nothing desires any more."""

    service_id: ServiceID
    kind: str = "service.deregistered"


@dataclass(frozen=True, slots=True)
class SetMaintenance:
    """Keep the service registered but out of every healthy answer, for `reason`; its
    `sidecar` proxy too, when it has one."""

    service_id: ServiceID
    reason: str
    kind: str = "service.maintenance"
    sidecar: ServiceID | None = None


@dataclass(frozen=True, slots=True)
class ClearMaintenance:
    """Return a service (and its `sidecar` proxy) from maintenance."""

    service_id: ServiceID
    kind: str = "service.maintenance_cleared"
    sidecar: ServiceID | None = None


@dataclass(frozen=True, slots=True)
class UpdateCheck:
    """Set a driven TTL check's status and output; `changed` is False for a mere refresh,
    which only restarts the check's TTL."""

    service_id: ServiceID
    check: Check
    changed: bool = True

    @property
    def kind(self) -> str:
        return "check.status" if self.changed else "check.refreshed"


Action = Register | Deregister | SetMaintenance | ClearMaintenance | UpdateCheck


@dataclass(frozen=True, slots=True)
class Plan:
    """The actions, in the order they are to be executed, and how many services were equal."""

    actions: tuple[Action, ...] = ()
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not self.actions

    def of(self, *kinds: type[Action]) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if isinstance(a, kinds))

    def count(self) -> dict[str, int]:
        """Actions by kind (`service.registered`, ...), for summaries and dry runs."""
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.kind] = counts.get(action.kind, 0) + 1
        return counts


def plan(
    desired: Mapping[ServiceID, Service],
    actual: Mapping[ServiceID, Service],
    *,
    scope: Collection[ServiceID] | None = None,
    adopt: Collection[str] = (),
    refresh: bool = False,
    stored: Stored,
) -> Plan:
    """The actions that turn `actual` into `desired`; with `scope`, for those IDs only.

    A scoped plan is what an event produces (only the containers it names); a full plan, what
    start-up and resync produce, also removes owned services nothing desires any more.
    `adopt` holds service ID prefixes whose registered services are desired as they are (the
    kept services of a container that exited with an error under `-deregister on-success`).
    With `refresh`, every driven check is written again, which restarts its TTL.
    """
    wanted = {**_adopted(actual, adopt), **desired}
    ids = sorted(set(wanted) | set(actual) if scope is None else set(scope))
    actions: list[Action] = []
    unchanged = 0
    for service_id in ids:
        want, have = wanted.get(service_id), actual.get(service_id)
        steps = _converge(want, have, stored)
        if want is not None and not steps and have is not None:
            unchanged += 1
        if want is not None and not any(
            isinstance(a, Deregister) and a.service_id == want.id for a in steps
        ):
            steps += _check_updates(want, stored(want), have, refresh=refresh)
        actions.extend(steps)
    return Plan(tuple(actions), unchanged)


def _adopted(
    actual: Mapping[ServiceID, Service], prefixes: Collection[str]
) -> dict[ServiceID, Service]:
    if not prefixes:
        return {}
    starts = tuple(prefixes)
    return {i: s for i, s in actual.items() if i.startswith(starts)}


def _converge(want: Service | None, have: Service | None, stored: Stored) -> list[Action]:
    """The writes that make the service `have` into `want`: none when they are equal."""
    view = stored(want) if want is not None else None
    if view is None or want is None:
        return [] if have is None else [Deregister(have.id)]
    held = stored(have) if have is not None else None
    actions: list[Action] = []
    if held is None or dataclasses.replace(held, maintenance=view.maintenance) != view:
        actions.append(Register(_keeping_catalog_tags(want, have), replaces=have is not None))
        if have is not None and have.sidecar_id and not want.sidecar_id:
            # the agent leaves a sidecar behind when its service is registered without it
            actions.append(Deregister(have.sidecar_id))
    # a registration ends maintenance mode (the sidecar's too): the agent replaces the checks
    held_reason = "" if actions or held is None else held.maintenance
    if view.maintenance != held_reason:
        reason, sidecar = want.maintenance, want.sidecar_id
        actions.append(
            SetMaintenance(want.id, reason, sidecar=sidecar)
            if reason
            else ClearMaintenance(want.id, sidecar=sidecar)
        )
    return actions


def _keeping_catalog_tags(want: Service, have: Service | None) -> Service:
    """With `EnableTagOverride`, tags are the catalog's: a re-registration for another reason
    sends the tags the agent holds (Consul copies catalog edits into them), since Consul 1.8
    would otherwise push the declared ones over the catalog's."""
    if have is None or not (want.enable_tag_override and have.enable_tag_override):
        return want
    return dataclasses.replace(want, tags=have.tags)


def _check_updates(
    want: Service, view: Service | None, have: Service | None, *, refresh: bool
) -> list[Action]:
    """Status writes for the driven checks the registry holds of `want`."""
    held = {c.id for c in view.checks} if view is not None else set()
    current = {c.id: (c.status, c.output) for c in have.checks} if have else {}
    updates: list[Action] = []
    for check in want.checks:
        if check.status is None or check.id not in held:
            continue
        changed = current.get(check.id) != (check.status, check.output)
        if changed or refresh:
            updates.append(UpdateCheck(want.id, check, changed=changed))
    return updates
