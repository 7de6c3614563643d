"""What the Consul agent keeps of a service: how it reports back what it was given
(`reported`), and what each write does to its copy (`applied`). The agent's registry, catalog
mode and the key-value registries (with their own `stored`) model their copies with these.
"""

from __future__ import annotations

import dataclasses

from registrator.core.model import Check, Service
from registrator.core.plan import (
    Action,
    ClearMaintenance,
    Deregister,
    Register,
    SetMaintenance,
    Stored,
    UpdateCheck,
)


def reported(service: Service) -> Service:
    """`service` as the Consul agent reports it back, as far as comparing goes: checks without
    definition or status; no tags when it has `EnableTagOverride`, since those are then the
    catalog's to change (Consul copies edited catalog tags into the agent's copy); and no
    tagged address that merely repeats the service's own address and port, which Consul adds
    by itself when it is not sent."""
    checks = sorted((c.reported() for c in service.checks), key=lambda c: c.id)
    tags = () if service.enable_tag_override else service.tags
    own = (service.address, service.port)
    tagged = tuple(t for t in service.tagged_addresses if (t.address, t.port) != own)
    connect = service.connect
    if connect is not None and connect.checks:
        proxy = sorted((c.reported() for c in connect.checks), key=lambda c: c.id)
        connect = dataclasses.replace(connect, checks=tuple(proxy))
    return dataclasses.replace(
        service, checks=tuple(checks), tags=tags, tagged_addresses=tagged, connect=connect
    )


def applied(action: Action, held: Service | None, stored: Stored = reported) -> Service | None:
    """The service as the registry holds it after `action` (None: not at all).

    A registration ends maintenance mode and keeps the status of the checks it had (the agent
    replaces a service's checks but not their state); a new check starts as its definition
    says, or critical.
    """
    if isinstance(action, Register):
        return _registered(action.service, held, stored)
    if isinstance(action, Deregister) or held is None:
        return None
    if isinstance(action, SetMaintenance):
        return dataclasses.replace(held, maintenance=action.reason or "maintenance")
    if isinstance(action, ClearMaintenance):
        return dataclasses.replace(held, maintenance="")
    return _with_status(held, action)


def _registered(service: Service, held: Service | None, stored: Stored) -> Service | None:
    view = stored(service)
    if view is None:
        return None
    before = {c.id: c for c in held.checks} if held is not None else {}
    given = {c.id: c.status or "critical" for c in service.checks}
    checks = tuple(_checked(c, before.get(c.id), given.get(c.id, "critical")) for c in view.checks)
    return dataclasses.replace(view, maintenance="", checks=checks)


def _checked(check: Check, before: Check | None, status: str) -> Check:
    if before is not None:
        return dataclasses.replace(check, status=before.status, output=before.output)
    return dataclasses.replace(check, status=status, output="")


def _with_status(held: Service, update: UpdateCheck) -> Service:
    new = update.check
    checks = tuple(
        dataclasses.replace(c, status=new.status, output=new.output) if c.id == new.id else c
        for c in held.checks
    )
    return dataclasses.replace(held, checks=checks)
