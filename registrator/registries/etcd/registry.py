"""etcd v3 as a registry: gliderlabs' keys, every one on this registrator's lease.

Ownership: one lease per registrator (host identity and prefix). Its ID is recorded in the
owner record `registrator/owners<PREFIX>/<host identity>` (outside every `/...` prefix, so no
reader of the service keys sees it), itself on the lease. A key is this registrator's when it
hangs on that lease; nothing else is ever rewritten or deleted: a write creates a key only
where none exists, or replaces one of ours that nobody changed since it was read (etcd
transactions), and a delete names the lease the key must still hang on.

Leases: `heartbeat` keeps the lease alive (the daemon calls it every third of `--ttl`). A
registrator killed with `kill -9` leaves keys that etcd deletes `--ttl` seconds later. A
restarted one finds its owner record, and while the lease lives, adopts it: it keeps that lease
alive instead of granting a new one, so its still-live keys stay as they are, with no write.
When the lease is gone (it expired while etcd was unreachable, or etcd lost its data), the
next write grants a new one and `heartbeat` reports the loss, so the daemon's next full pass
writes every key again under it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Collection
from urllib.parse import urlsplit

from registrator.core.errors import RegistryRefused, RegistryUnavailable
from registrator.core.model import Check, Service, ServiceID
from registrator.registries.etcd.gateway import EtcdGateway, KeyValue, LeaseNotFound
from registrator.registries.kv.layout import Layout, held
from registrator.registries.kv.owned import OwnedKeys

#: Owner records live under this (no leading slash: outside any `/...` prefix).
OWNERS_ROOT = "registrator/owners"
DEFAULT_TTL = 30


class EtcdRegistry:
    """Services as keys of `layout`, on one lease of `ttl` seconds kept alive by `heartbeat`."""

    def __init__(
        self, gateway: EtcdGateway, layout: Layout, *, ttl: int = DEFAULT_TTL, health: bool = True
    ) -> None:
        self._gateway = gateway
        self._layout = layout
        self._ttl = ttl
        self._health = health
        self._lock = threading.Lock()
        #: held while a lease is granted: writes in parallel must not each grant one
        self._granting = threading.Lock()
        self._owner: str | None = None
        #: the lease our keys hang on (0: none yet, or lost)
        self._lease = 0
        #: a lease of ours granted with another TTL, whose keys may be moved to the new one
        self._previous: set[int] = set()
        self._looked_up = False
        self._lost = False
        #: service ID -> its keys as last read (a renamed service has two until rewritten)
        self._seen: OwnedKeys[KeyValue] = OwnedKeys()

    @property
    def base_url(self) -> str:
        return self._gateway.base_url

    @property
    def prefix(self) -> str:
        return self._layout.prefix

    @property
    def lease(self) -> int:
        return self._lease

    def owner_key(self, owner: str) -> str:
        return f"{OWNERS_ROOT}{self._layout.prefix}/{owner}"

    def node(self) -> str:
        """Keys belong to no agent node: "" (the agent-changed rule is for agent services)."""
        return ""

    def advertise_address(self) -> str:
        """The address this host reaches etcd from: where its published ports are registered
        when `-ip` is not given (etcd has no notion of the host's address)."""
        parts = urlsplit(self._gateway.base_url)
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port, type=socket.SOCK_DGRAM)
            family, _, _, _, address = infos[0]
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(address)
                return str(probe.getsockname()[0])
        except (OSError, IndexError) as e:
            raise RegistryUnavailable(f"etcd {parts.netloc}: no route: {e}") from e

    def ping(self, *, timeout: float = 3.0) -> None:
        self._gateway.version(timeout=timeout)

    def services(
        self,
        *,
        owner: str,
        ids: Collection[ServiceID] | None = None,
        with_checks: bool = True,
    ) -> dict[ServiceID, Service]:
        """The services on this registrator's lease; with `ids`, only those."""
        lease = self._adopt(owner)
        if not lease:
            return {}
        kvs, _ = self._gateway.range(self._layout.root)
        found = [
            (self._layout.parse(kv.key, kv.value) if kv.lease == lease else None, kv) for kv in kvs
        ]
        return self._seen.read(found, ids)

    def stored(self, service: Service) -> Service | None:
        return held(service, health=self._health)

    def register(self, service: Service) -> None:
        refusal = self._layout.refusal(service)
        if refusal is not None:
            raise RegistryRefused(f"{service.id}: {refusal}")
        key, value = self._layout.key(service), self._layout.value(service)
        try:
            self._write(key, value, self._ensure_lease())
        except LeaseNotFound:
            self._drop(self._lease)
            self._write(key, value, self._ensure_lease())
        for stale in self._seen.take(service.id) or ():
            if stale.key != key:
                self._gateway.delete(stale.key, lease=stale.lease)

    def deregister(self, service: ServiceID) -> None:
        """Delete the service's keys, each only while it still hangs on our lease."""
        for kv in self._seen.take(service) or self._find(service):
            self._gateway.delete(kv.key, lease=kv.lease)

    def set_maintenance(self, service: ServiceID, *, enabled: bool, reason: str = "") -> None:
        """Never planned: `stored` leaves maintenance out (a service in it is not held)."""

    def update_ttl(self, check: Check) -> None:
        """Never planned: keys carry no checks."""

    def heartbeat(self) -> bool:
        """Keep the lease alive; True when it was lost since the last call (every key must
        be written again, which the next full pass does)."""
        lease = self._lease
        if lease and self._gateway.keepalive(lease) <= 0:
            self._drop(lease)
        with self._lock:
            lost, self._lost = self._lost, False
        return lost

    def close(self) -> None:
        self._gateway.close()

    def _adopt(self, owner: str) -> int:
        """Our lease; the first time, the one a previous run recorded, while it lives."""
        with self._lock:
            self._owner = self._owner or owner
            if owner != self._owner or self._lease or self._looked_up:
                return self._lease if owner == self._owner else 0
        record = self._gateway.get(self.owner_key(owner))
        found = record.lease if record is not None else 0
        # a keepalive says whether it lives, with which TTL, and gives it a full TTL again
        granted = self._gateway.keepalive(found) if found else 0
        with self._lock:
            self._looked_up = True
            if granted == self._ttl and not self._lease:
                self._lease = found
            elif granted:
                self._previous.add(found)  # another --ttl: its keys move to a new lease
            return self._lease

    def _ensure_lease(self) -> int:
        with self._granting:
            return self._lease or self._grant()

    def _grant(self) -> int:
        with self._lock:
            owner = self._owner or ""
        lease = self._gateway.grant(self._ttl)
        record = {"lease": str(lease), "prefix": self._layout.prefix, "ttl": self._ttl}
        self._gateway.put(self.owner_key(owner), json.dumps(record), lease=lease)
        with self._lock:
            self._lease, self._looked_up = lease, True
            return lease

    def _drop(self, lease: int) -> None:
        with self._lock:
            if lease and self._lease == lease:
                self._lease, self._lost = 0, True
                self._seen.clear()

    def _write(self, key: str, value: str, lease: int) -> None:
        """Create the key, or replace it when it is ours and nobody changed it since."""
        existing = self._gateway.create(key, value, lease=lease)
        if existing is None:
            return
        if existing.lease not in {lease, *self._previous}:
            raise RegistryRefused(
                f"{key} exists and is not this registrator's (lease {existing.lease or 'none'}):"
                " left as it is"
            )
        if existing.value == value and existing.lease == lease:
            return
        if not self._gateway.replace(key, value, lease=lease, mod_revision=existing.mod_revision):
            raise RegistryUnavailable(f"{key} changed while it was written; trying again")

    def _find(self, service: ServiceID) -> list[KeyValue]:
        """The keys of `service` on one of our leases, when it was not read before."""
        ours = {self._lease, *self._previous} - {0}
        kvs, _ = self._gateway.range(self._layout.root)
        return [kv for kv in kvs if kv.lease in ours and kv.key.endswith(f"/{service}")]
