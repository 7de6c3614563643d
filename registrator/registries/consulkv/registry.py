"""Consul KV as a registry: gliderlabs' keys `PREFIX/<name>/<id>` = `ADDR:PORT`.

Ownership: every key is acquired by this registrator's session (Consul's lease), named
`registrator <host identity> <PREFIX>`, with behaviour `delete` and `--ttl`: a key is ours
when its `Session` is that session. Writes go through Consul transactions that create a key
only where none exists, or rewrite one our session holds; deletes check the session too, so a
key someone else wrote is never touched.

Leases: `heartbeat` renews the session. A registrator killed with `kill -9` stops renewing; Consul
invalidates the session between `--ttl` and twice `--ttl` later (Consul's own slack) and deletes
its keys. A restarted registrator finds its session on the agent's node by name and, while it
lives, adopts it: no key is written. A lost session is replaced at the next write and reported
by `heartbeat`, so the daemon's next full pass writes every key again.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Collection

from registrator.core.errors import (
    ConfigError,
    RegistryRefused,
    RegistryUnavailable,
)
from registrator.core.model import Check, Service, ServiceID
from registrator.registries.consul.agent import ConsulAgent
from registrator.registries.consul.target import ConsulTarget
from registrator.registries.consulkv.client import ConsulKVClient, SessionLost, b64
from registrator.registries.kv.layout import Layout, held
from registrator.registries.kv.owned import OwnedKeys

DEFAULT_TTL = 30


class ConsulKV:
    """Services as keys of `layout` in Consul KV, held by one session renewed by `heartbeat`."""

    def __init__(
        self,
        target: ConsulTarget,
        layout: Layout,
        *,
        ttl: int = DEFAULT_TTL,
        health: bool = True,
        timeout: float = 10,
    ) -> None:
        self._agent = ConsulAgent(target, timeout=timeout)
        self._client = ConsulKVClient(target, timeout=timeout)
        self._layout = layout
        self._ttl = ttl
        self._health = health
        self._lock = threading.Lock()
        #: held while a session is created: writes in parallel must not each create one
        self._creating = threading.Lock()
        self._owner: str | None = None
        self._session = ""
        #: sessions of ours created with another TTL: their keys move to the new session
        self._previous: set[str] = set()
        self._looked_up = False
        self._lost = False
        #: service ID -> its keys as last read (a renamed service has two until rewritten)
        self._seen: OwnedKeys[str] = OwnedKeys()

    @property
    def session(self) -> str:
        return self._session

    def session_name(self, owner: str) -> str:
        return f"registrator {owner} {self._layout.prefix}"

    def node(self) -> str:
        """Keys belong to no agent node: "" (the agent-changed rule is for agent services)."""
        return ""

    def advertise_address(self) -> str:
        return self._agent.advertise_address()

    def ping(self, *, timeout: float = 3.0) -> None:
        self._agent.ping(timeout=timeout)

    def services(
        self,
        *,
        owner: str,
        ids: Collection[ServiceID] | None = None,
        with_checks: bool = True,
    ) -> dict[ServiceID, Service]:
        """The services whose keys our session holds; with `ids`, only those."""
        session = self._adopt(owner)
        if not session:
            return {}
        found = []
        for raw in self._client.keys(self._layout.root):
            value = base64.b64decode(raw.get("Value") or "").decode(errors="replace")
            key = str(raw.get("Key", ""))
            service = self._layout.parse(key, value) if raw.get("Session") == session else None
            found.append((service, key))
        return self._seen.read(found, ids)

    def stored(self, service: Service) -> Service | None:
        return held(service, health=self._health)

    def register(self, service: Service) -> None:
        refusal = self._layout.refusal(service)
        if refusal is not None:
            raise RegistryRefused(f"{service.id}: {refusal}")
        key, value = self._layout.key(service), self._layout.value(service)
        try:
            self._write(key, value, self._ensure_session())
        except SessionLost:
            self._drop(self._session)
            self._write(key, value, self._ensure_session())
        for stale in self._seen.take(service.id) or ():
            if stale != key:
                self._delete(stale)

    def deregister(self, service: ServiceID) -> None:
        """Delete the service's keys, each only while our session still holds it."""
        keys = self._seen.take(service)
        if keys is None:
            ours = {self._session, *self._previous} - {""}
            keys = [
                str(raw.get("Key"))
                for raw in self._client.keys(self._layout.root)
                if raw.get("Session") in ours and str(raw.get("Key")).endswith(f"/{service}")
            ]
        for key in keys:
            self._delete(key)

    def set_maintenance(self, service: ServiceID, *, enabled: bool, reason: str = "") -> None:
        """Never planned: `stored` leaves maintenance out (a service in it is not held)."""

    def update_ttl(self, check: Check) -> None:
        """Never planned: keys carry no checks."""

    def heartbeat(self) -> bool:
        """Renew the session; True when it was lost since the last call."""
        session = self._session
        if session:
            response = self._client.request("PUT", f"/v1/session/renew/{session}", missing_ok=True)
            if response.status_code == 404:
                self._drop(session)
        with self._lock:
            lost, self._lost = self._lost, False
        return lost

    def close(self) -> None:
        self._client.close()
        self._agent.close()

    def _adopt(self, owner: str) -> str:
        """Our session; the first time, a live one a previous run left on this node."""
        with self._lock:
            self._owner = self._owner or owner
            if owner != self._owner or self._session or self._looked_up:
                return self._session if owner == self._owner else ""
        node = (self._client.request("GET", "/v1/agent/self").json().get("Config") or {}).get(
            "NodeName"
        )
        sessions = self._client.request("GET", f"/v1/session/node/{node}").json() or []
        mine = [s for s in sessions if s.get("Name") == self.session_name(owner)]
        for found in mine:  # renewed at once: it may have little of its TTL left
            self._client.request("PUT", f"/v1/session/renew/{found['ID']}", missing_ok=True)
        with self._lock:
            self._looked_up = True
            for found in mine:
                if found.get("TTL") == f"{self._ttl}s" and not self._session:
                    self._session = str(found["ID"])
                else:
                    self._previous.add(str(found["ID"]))
            return self._session

    def _ensure_session(self) -> str:
        with self._creating:
            return self._session or self._create_session()

    def _create_session(self) -> str:
        with self._lock:
            name = self.session_name(self._owner or "")
        body = {"Name": name, "TTL": f"{self._ttl}s", "Behavior": "delete", "LockDelay": "0s"}
        try:
            created = self._client.request("PUT", "/v1/session/create", json=body).json()
        except RegistryRefused as e:
            raise ConfigError(
                f"consulkv: Consul refused a session with --ttl {self._ttl}: {e}"
            ) from e
        with self._lock:
            self._session, self._looked_up = str(created["ID"]), True
            return self._session

    def _drop(self, session: str) -> None:
        with self._lock:
            if session and self._session == session:
                self._session, self._lost = "", True
                self._seen.clear()

    def _write(self, key: str, value: str, session: str) -> None:
        """Create the key held by `session`, or rewrite it when a session of ours holds it."""
        lock = {"KV": {"Verb": "lock", "Key": key, "Value": b64(value), "Session": session}}
        if self._client.txn([{"KV": {"Verb": "check-not-exists", "Key": key}}, lock]):
            return
        current = self._client.request("GET", f"/v1/kv/{key}", missing_ok=True)
        holder = (current.json() or [{}])[0].get("Session") if current.content else None
        if current.status_code == 404:
            if not self._client.txn([{"KV": {"Verb": "check-not-exists", "Key": key}}, lock]):
                raise RegistryUnavailable(f"{key} changed while it was written; trying again")
            return
        if holder not in {session, *self._previous}:
            raise RegistryRefused(
                f"{key} exists and is not this registrator's (session {holder or 'none'}):"
                " left as it is"
            )
        check = {"KV": {"Verb": "check-session", "Key": key, "Session": holder}}
        steps = [check, lock]
        if holder != session:
            steps.insert(1, {"KV": {"Verb": "unlock", "Key": key, "Session": holder}})
        if not self._client.txn(steps):
            raise RegistryUnavailable(f"{key} changed while it was written; trying again")

    def _delete(self, key: str) -> None:
        ours = {self._session, *self._previous} - {""}
        for session in ours:
            check = {"KV": {"Verb": "check-session", "Key": key, "Session": session}}
            if self._client.txn([check, {"KV": {"Verb": "delete", "Key": key}}]):
                return
