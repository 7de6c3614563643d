"""The keys a key-value registry last listed as this registrator's, by service ID."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Generic, TypeVar

from registrator.core.model import Service, ServiceID
from registrator.registries.kv.layout import unequal

#: what the registry needs to delete a key again (its path; with etcd, its lease too)
Entry = TypeVar("Entry")


class OwnedKeys(Generic[Entry]):
    """Remembers where each owned service was found, so a write can remove a stale key.

    One service ID under two keys (its name changed) is reported changed, so the plan writes
    it again; that write removes the key it no longer uses.
    """

    def __init__(self) -> None:
        self._seen: dict[ServiceID, list[Entry]] = {}

    def read(
        self, found: Iterable[tuple[Service | None, Entry]], ids: Collection[ServiceID] | None
    ) -> dict[ServiceID, Service]:
        """The services in `found` (None: a key not ours), restricted to `ids` when given."""
        services: dict[ServiceID, Service] = {}
        seen: dict[ServiceID, list[Entry]] = {}
        for service, entry in found:
            if service is None or (ids is not None and service.id not in ids):
                continue
            seen.setdefault(service.id, []).append(entry)
            services[service.id] = service if service.id not in services else unequal(service)
        if ids is None:
            self._seen.clear()
        for service_id in ids or ():
            self._seen.pop(service_id, None)
        self._seen.update(seen)
        return services

    def take(self, service_id: ServiceID) -> list[Entry] | None:
        """Where `service_id` was last found (and forget it); None when it was not."""
        return self._seen.pop(service_id, None)

    def clear(self) -> None:
        self._seen.clear()
