"""Consul KV as a lease store: keys, transactions and sessions over `wire`, with the token
and TLS settings of `consul://`; the JSON stops here.

The lease is a session (Consul's lease) named `registrator <host identity> <PREFIX>`, with
behaviour `delete` and `--ttl`; a key hangs on it when the session holds its lock. Consul
invalidates a session between its TTL and twice that after its last renewal (its own slack).
A restarted registrator finds its sessions on the agent's node by name.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from registrator.core.errors import ConfigError, RegistryRefused, RegistryUnavailable
from registrator.registries.consul.agent import ConsulAgent, tls_context
from registrator.registries.consul.target import ConsulTarget
from registrator.registries.kv.exchange import failure, send
from registrator.registries.kv.leased import Entry, LeaseLost
from registrator.wire import Answer, Connections, Endpoint


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _path(key: str) -> str:
    """`key` in a URL path: a service's name and ID may hold anything but a slash."""
    return quote(key, safe="/!$&'()*+,;=:@")


def _entry(raw: dict[str, Any]) -> Entry:
    return Entry(
        key=str(raw.get("Key", "")),
        value=base64.b64decode(raw.get("Value") or "").decode(errors="replace"),
        lease=str(raw.get("Session") or ""),
        version=int(raw.get("ModifyIndex") or 0),
    )


class ConsulKVStore:
    """The agent at `target`, its KV store under `prefix` and its sessions."""

    def __init__(self, target: ConsulTarget, *, prefix: str, timeout: float = 10) -> None:
        self._agent = ConsulAgent(target, timeout=timeout)
        self._prefix = prefix
        tls = tls_context(target) if target.base_url.startswith("https:") else None
        headers = {"X-Consul-Token": target.token} if target.token else {}
        endpoint = Endpoint(target.base_url, uds=target.uds, tls=tls)
        self._http = Connections(endpoint, timeout=timeout, headers=headers)

    def session_name(self, owner: str) -> str:
        return f"registrator {owner} {self._prefix}"

    def recorded(self, owner: str) -> list[tuple[str, int]]:
        node = _path(self._agent.node())
        sessions = self._request("GET", f"/v1/session/node/{node}").json() or []
        mine = [s for s in sessions if s.get("Name") == self.session_name(owner)]
        return [
            (str(s["ID"]), _seconds(str(s.get("TTL") or "")))
            for s in mine
            if self.keep_alive(str(s["ID"]))
        ]

    def grant(self, owner: str, ttl: int) -> str:
        body = {"Name": self.session_name(owner), "TTL": f"{ttl}s", "Behavior": "delete"}
        try:
            created = self._request("PUT", "/v1/session/create", {**body, "LockDelay": "0s"})
        except RegistryRefused as e:
            raise ConfigError(f"consulkv: Consul refused a session with --ttl {ttl}: {e}") from e
        return str(created.json()["ID"])

    def keep_alive(self, lease: str) -> bool:
        return self._request("PUT", f"/v1/session/renew/{lease}", missing_ok=True).ok

    def scan(self, root: str) -> list[Entry]:
        answer = self._request("GET", f"/v1/kv/{_path(root)}?recurse=true", missing_ok=True)
        return [_entry(raw) for raw in answer.json() or ()] if answer.ok else []

    def create(self, key: str, value: str, *, lease: str) -> Entry | None:
        absent = {"KV": {"Verb": "check-not-exists", "Key": key}}
        for _ in range(2):  # the key may go between the failed transaction and the read
            if self._txn([absent, _lock(key, value, lease)]):
                return None
            current = self._request("GET", f"/v1/kv/{_path(key)}", missing_ok=True)
            if current.ok and current.json():
                return _entry(current.json()[0])
        raise RegistryUnavailable(f"{key} changed while it was written; trying again")

    def replace(self, entry: Entry, value: str, *, lease: str) -> bool:
        steps = [{"KV": {"Verb": "check-session", "Key": entry.key, "Session": entry.lease}}]
        if entry.lease != lease:  # moved from a session of ours with another TTL
            steps.append({"KV": {"Verb": "unlock", "Key": entry.key, "Session": entry.lease}})
        return self._txn([*steps, _lock(entry.key, value, lease)])

    def delete(self, entry: Entry) -> None:
        check = {"KV": {"Verb": "check-session", "Key": entry.key, "Session": entry.lease}}
        self._txn([check, {"KV": {"Verb": "delete", "Key": entry.key}}])

    def advertise_address(self) -> str:
        return self._agent.advertise_address()

    def ping(self, *, timeout: float) -> None:
        self._agent.ping(timeout=timeout)

    def close(self) -> None:
        self._http.close()
        self._agent.close()

    def _txn(self, operations: list[dict[str, Any]]) -> bool:
        """Run a transaction; False when one of its checks failed (Consul answers 409)."""
        answer = self._request("PUT", "/v1/txn", operations, conflict_ok=True)
        if answer.status != 409:
            return True
        errors = (answer.json() or {}).get("Errors") or ()
        if any("invalid session" in str(e.get("What", "")).lower() for e in errors):
            raise LeaseLost(f"consul txn: {errors}")
        return False

    def _request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        missing_ok: bool = False,
        conflict_ok: bool = False,
    ) -> Answer:
        answer = send(self._http, method, path, payload=payload)
        code = answer.status
        if answer.ok or (missing_ok and code == 404) or (conflict_ok and code == 409):
            return answer
        raise failure(code, f"{method} {path}: {code} {answer.text.strip()[:200]}")


def _seconds(ttl: str) -> int:
    """A session's TTL as created (`30s`) in seconds; 0 for any other spelling."""
    digits = ttl.removesuffix("s")
    return int(digits) if digits.isdigit() else 0


def _lock(key: str, value: str, session: str) -> dict[str, Any]:
    return {"KV": {"Verb": "lock", "Key": key, "Value": _b64(value), "Session": session}}
