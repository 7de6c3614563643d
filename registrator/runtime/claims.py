"""Which known containers should have which services: an index, so that an event's plan
looks up its few services without going through every container.

An immutable value: each change makes a new one (`KnownContainers` keeps the latest), so it
is read from any thread without a lock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from registrator.core.model import ContainerID, Derivation, Service, ServiceID


@dataclass(frozen=True, slots=True)
class Claims:
    #: service ID -> the containers that should have it (one, unless two claim one ID), in
    #: the order they claimed it
    by_service: Mapping[ServiceID, Mapping[ContainerID, Service]] = field(default_factory=dict)
    #: kept containers first seen exited: the prefix of the services they keep as they are
    adopting: Mapping[ContainerID, str] = field(default_factory=dict)

    def replaced(
        self, container: ContainerID, before: Derivation | None, after: Derivation | None
    ) -> Claims:
        """These claims once `container` claims what `after` derives instead of `before`
        (None: nothing, it is gone); a renewed claim counts as the latest."""
        claims = dict(self.by_service)
        for service in before.services if before is not None else ():
            claim = {c: s for c, s in claims.get(service.id, {}).items() if c != container}
            if claim:
                claims[service.id] = claim
            else:
                claims.pop(service.id, None)
        for service in after.services if after is not None else ():
            claim = {c: s for c, s in claims.get(service.id, {}).items() if c != container}
            claims[service.id] = {**claim, container: service}
        adopting = {c: p for c, p in self.adopting.items() if c != container}
        if after is not None and after.adopt:
            adopting[container] = after.adopt
        return Claims(claims, adopting)

    def desired(self, ids: Collection[ServiceID] | None = None) -> dict[ServiceID, Service]:
        """Every claimed service, or those of `ids`. Of two containers claiming one ID, the
        one that claimed it last."""
        wanted = self.by_service.keys() if ids is None else ids
        return {
            sid: list(claim.values())[-1] for sid in wanted if (claim := self.by_service.get(sid))
        }

    def adopt(self) -> tuple[str, ...]:
        return tuple(self.adopting.values())
