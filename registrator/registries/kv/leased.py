"""A key-value store as a registry: gliderlabs' keys, each on this registrator's lease.

One class serves etcd (a lease) and Consul KV (a session, Consul's lease); each backend is a
small `LeaseStore`. A key is this registrator's when it hangs on its lease; nothing else is
ever rewritten or deleted: a write creates a key only where none exists, or replaces one of
ours that nobody changed since it was read, and a delete names the lease the key must still
hang on (each in one transaction of the store).

Leases: one per registrator (host identity and prefix), recorded as the owner's in the store.
`heartbeat` keeps it alive (the daemon calls it every third of `--ttl`). A registrator killed
with `kill -9` leaves keys that the store deletes when the lease expires. A restarted one finds
its recorded lease and, while it lives, adopts it: its still-live keys stay as they are, with
no write. A live lease of ours granted with another TTL is not adopted: its keys move to a new
lease as they are written. When the lease is gone (it expired while the store was unreachable,
or the store lost its data), the next write takes a new one and `heartbeat` reports the loss,
so the daemon's next full pass writes every key again under it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from registrator.core.errors import RegistryError, RegistryRefused, RegistryUnavailable
from registrator.core.model import Check, Service, ServiceID
from registrator.core.plan import Action
from registrator.registries.consul.held import applied
from registrator.registries.kv.layout import Layout, held
from registrator.registries.kv.owned import OwnedKeys

DEFAULT_TTL = 30


class LeaseLost(RegistryError):
    """The lease a write named does not exist (any more): it expired or the store lost it."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A key as the store holds it: its value, the lease it hangs on ("" for none) and the
    version a conditional write compares (etcd's mod revision, Consul's modify index)."""

    key: str
    value: str
    lease: str
    version: int = 0


class LeaseStore(Protocol):
    """What the registry needs of a store: leases, a scan, and writes only if ours.

    Every method raises `RegistryUnavailable`, `RegistryDenied` or `RegistryRefused` as the
    `Registry` protocol says; a write naming a lease that is gone raises `LeaseLost`.
    """

    def recorded(self, owner: str) -> list[tuple[str, int]]:
        """The live leases recorded as `owner`'s, each kept alive at once (it may have little
        of its TTL left), with the TTL it was granted."""

    def grant(self, owner: str, ttl: int) -> str:
        """A new lease of `ttl` seconds, recorded as `owner`'s."""

    def keep_alive(self, lease: str) -> bool:
        """Refresh `lease`; False when it no longer exists."""

    def scan(self, root: str) -> list[Entry]:
        """Every key starting with `root`."""

    def create(self, key: str, value: str, *, lease: str) -> Entry | None:
        """Put `key` on `lease` only if it does not exist; None when done, else the key as it
        is (`RegistryUnavailable` when it changed meanwhile)."""

    def replace(self, entry: Entry, value: str, *, lease: str) -> bool:
        """Put `entry`'s key on `lease` only while it is as read; False when it changed."""

    def delete(self, entry: Entry) -> None:
        """Delete `entry`'s key only while it still hangs on `entry.lease`."""

    def advertise_address(self) -> str: ...

    def ping(self, *, timeout: float) -> None: ...

    def close(self) -> None: ...


class LeasedRegistry:
    """Services as keys of `layout`, on one lease of `ttl` seconds kept alive by `heartbeat`."""

    def __init__(
        self, store: LeaseStore, layout: Layout, *, ttl: int = DEFAULT_TTL, health: bool = True
    ) -> None:
        self._store = store
        self._layout = layout
        self._ttl = ttl
        self._health = health
        self._lock = threading.Lock()
        #: held while a lease is granted (`_lock` is taken inside it, never the other way round)
        self._granting = threading.Lock()
        self._owner: str | None = None
        #: the lease our keys hang on ("": none yet, or lost)
        self._lease = ""
        #: live leases of ours granted with another TTL, whose keys move to the new one
        self._previous: set[str] = set()
        self._looked_up = False
        self._lost = False
        #: service ID -> its keys as last read (a renamed service has two until rewritten)
        self._seen: OwnedKeys[Entry] = OwnedKeys()

    @property
    def layout(self) -> Layout:
        return self._layout

    def node(self) -> str:
        """Keys belong to no agent node: "" (the agent-changed rule is for agent services)."""
        return ""

    def advertise_address(self) -> str:
        return self._store.advertise_address()

    def ping(self, *, timeout: float = 3.0) -> None:
        self._store.ping(timeout=timeout)

    def services(
        self,
        *,
        owner: str,
        ids: Collection[ServiceID] | None = None,
        with_checks: bool = True,
    ) -> dict[ServiceID, Service]:
        """The services whose keys hang on this registrator's lease; with `ids`, only those."""
        lease = self._adopt(owner)
        if not lease:
            return {}
        found = [
            (self._layout.parse(e.key, e.value) if e.lease == lease else None, e)
            for e in self._store.scan(self._layout.root)
        ]
        return self._seen.read(found, ids)

    def stored(self, service: Service) -> Service | None:
        return held(service, health=self._health)

    def applied(self, action: Action, held: Service | None) -> Service | None:
        return applied(action, held, self.stored)

    def register(self, service: Service) -> None:
        refusal = self._layout.refusal(service)
        if refusal is not None:
            raise RegistryRefused(f"{service.id}: {refusal}")
        key, value = self._layout.key(service), self._layout.value(service)
        try:
            self._write(key, value, self._ensure_lease())
        except LeaseLost:
            self._drop(self._lease)
            self._write(key, value, self._ensure_lease())
        for stale in self._seen.take(service.id) or ():
            if stale.key != key:
                self._store.delete(stale)

    def deregister(self, service: ServiceID) -> None:
        """Delete the service's keys, each only while it still hangs on our lease."""
        for entry in self._seen.take(service) or self._find(service):
            self._store.delete(entry)

    def set_maintenance(self, service: ServiceID, *, enabled: bool, reason: str = "") -> None:
        """Never planned: `stored` leaves maintenance out (a service in it is not held)."""

    def update_ttl(self, check: Check) -> None:
        """Never planned: keys carry no checks."""

    def heartbeat(self) -> bool:
        """Keep the lease alive; True when it was lost since the last call (every key must
        be written again, which the next full pass does)."""
        lease = self._lease
        if lease and not self._store.keep_alive(lease):
            self._drop(lease)
        with self._lock:
            lost, self._lost = self._lost, False
        return lost

    def close(self) -> None:
        self._store.close()

    def _adopt(self, owner: str) -> str:
        """Our lease; the first time, the one a previous run recorded, while it lives."""
        with self._lock:
            self._owner = self._owner or owner
            if owner != self._owner or self._lease or self._looked_up:
                return self._lease if owner == self._owner else ""
        found = self._store.recorded(owner)
        with self._lock:
            self._looked_up = True
            for lease, ttl in found:
                if ttl == self._ttl and not self._lease:
                    self._lease = lease
                else:
                    self._previous.add(lease)
            return self._lease

    def _ensure_lease(self) -> str:
        with self._granting:  # lanes writing at once wait for one grant, and share its lease
            with self._lock:
                if self._lease:
                    return self._lease
                owner = self._owner or ""
            lease = self._store.grant(owner, self._ttl)
            with self._lock:
                self._lease, self._looked_up = lease, True
                return lease

    def _drop(self, lease: str) -> None:
        with self._lock:
            if lease and self._lease == lease:
                self._lease, self._lost = "", True
                self._seen.clear()

    def _write(self, key: str, value: str, lease: str) -> None:
        """Create the key, or replace it when it is ours and nobody changed it since."""
        existing = self._store.create(key, value, lease=lease)
        if existing is None:
            return
        if existing.lease not in {lease, *self._previous}:
            raise RegistryRefused(
                f"{key} exists and is not this registrator's (lease {existing.lease or 'none'}):"
                " left as it is"
            )
        if existing.value == value and existing.lease == lease:
            return
        if not self._store.replace(existing, value, lease=lease):
            raise RegistryUnavailable(f"{key} changed while it was written; trying again")

    def _find(self, service: ServiceID) -> list[Entry]:
        """The keys of `service` on one of our leases, when it was not read before."""
        ours = {self._lease, *self._previous} - {""}
        entries = self._store.scan(self._layout.root)
        return [e for e in entries if e.lease in ours and e.key.endswith(f"/{service}")]
