"""Which known containers should have which services: an index, so that an event's plan
looks up its few services without going through every container.

Not locked on its own: `KnownContainers` calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Collection

from registrator.core.model import ContainerID, Derivation, Service, ServiceID


class Claims:
    def __init__(self) -> None:
        #: service ID -> the containers that should have it (one, unless two claim one ID)
        self._claims: dict[ServiceID, dict[ContainerID, Service]] = {}
        #: kept containers first seen exited: the prefix of the services they keep as they are
        self._adopting: dict[ContainerID, str] = {}

    def add(self, container: ContainerID, derivation: Derivation) -> None:
        for service in derivation.services:
            self._claims.setdefault(service.id, {})[container] = service
        if derivation.adopt:
            self._adopting[container] = derivation.adopt

    def remove(self, container: ContainerID, derivation: Derivation | None) -> None:
        self._adopting.pop(container, None)
        for service in derivation.services if derivation is not None else ():
            claim = self._claims.get(service.id, {})
            claim.pop(container, None)
            if not claim:
                self._claims.pop(service.id, None)

    def desired(self, ids: Collection[ServiceID] | None = None) -> dict[ServiceID, Service]:
        """Every claimed service, or those of `ids`. Of two containers claiming one ID, the
        one that claimed it last."""
        wanted = self._claims.keys() if ids is None else ids
        return {
            sid: next(reversed(claim.values()))
            for sid in wanted
            if (claim := self._claims.get(sid))
        }

    def adopt(self) -> tuple[str, ...]:
        return tuple(self._adopting.values())
