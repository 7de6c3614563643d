"""Dead hosts in catalog mode, on Consul's own primitives: a session, locks, KV, blocking queries.

The keys (one prefix for the whole fleet, `registrator/catalog`):

    registrator/catalog/nodes/<node>   held by the session of the registrator whose node it is;
                                       value: the node's name. Consul releases it (the key
                                       stays, with no Session) when that session's TTL runs out.
    registrator/catalog/reap/<node>    held by the one registrator that reaps a dead node;
                                       value: {"dead_index": the lock's ModifyIndex at that
                                       death, "since": when it was marked dead (epoch seconds)}

The session: one per registrator, named `registrator catalog <node>`, TTL `--session-ttl`,
`Behavior: release`, no lock delay, bound to registrator's own node with no node checks (no
agent, no serfHealth): it lives exactly as long as it is renewed, and goes with the node. It
needs the node, so the lock is taken at the first heartbeat after the node's registration. A
registrator restarted within the TTL adopts its session (by name, on its node): nothing written.

Dead: the node check `registrator-alive` (critical), which fails every service of the node in
health queries and DNS at once, as serfHealth does on an agent's node: one write, whatever the
number of services, and none of the services' own checks is touched. The owner keeps it
passing: it writes it when it (re)takes its lock and finds it missing or not passing, so a
plain restart writes nothing and a comeback after being marked writes that one check.

Every judgement about another node checks its lock first: the mark in the same transaction,
the reap just before `PUT /v1/catalog/deregister` (one write). A node without registrator's
node meta (`node.py`) is never written.
"""

from __future__ import annotations

import threading
from typing import Any

from registrator.core.dead_hosts import Watched
from registrator.core.errors import RegistryDenied, RegistryUnavailable
from registrator.registries.catalog.liveness_keys import parse_tree
from registrator.registries.catalog.node import is_registrators
from registrator.registries.consul.agent import ConsulAgent
from registrator.wire import path_segment

PREFIX = "registrator/catalog"
#: the node check that says whether the node's registrator lives
ALIVE_CHECK = "registrator-alive"
ALIVE_NAME = "registrator alive"
#: the session's TTL when `--ttl` does not say (Consul refuses under 10 s by default)
SESSION_TTL = 15
#: what Consul answers (500) when a session names a node the catalog does not have yet
_NO_NODE = "Missing node registration"
DENIED_HINT = (
    "watching for dead hosts needs session write on node {node!r}, key_prefix "
    '"registrator/catalog/" write and node_prefix "" write (README, ACL)'
)


class NodeLockTaken(RegistryDenied):
    """Another session holds this node's lock: two registrators share one host identity."""


class Liveness:
    """This registrator's session and node lock, and what it may do about other nodes."""

    def __init__(self, api: ConsulAgent, *, ttl: int = SESSION_TTL, prefix: str = PREFIX) -> None:
        self._api = api
        self._ttl = ttl
        self._prefix = prefix.strip("/")
        self._lock = threading.Lock()
        self._node = ""
        self._session = ""

    @property
    def ttl(self) -> int:
        return self._ttl

    @property
    def session(self) -> str:
        with self._lock:
            return self._session

    def close(self) -> None:
        self._api.close()

    def own(self, node: str) -> None:
        """Hold the lock of `node` (this registrator's node, named by its host identity)."""
        with self._lock:
            self._node = node

    def heartbeat(self) -> bool:
        """Renew the session, or make it and take the node's lock; True when a session that
        held the lock was lost meanwhile (so whatever was reaped is written again)."""
        with self._lock:
            node, session = self._node, self._session
        if not node:
            return False
        if session:
            path = f"/v1/session/renew/{path_segment(session)}"
            if self._api.request("PUT", path, missing_ok=True).status != 404:
                return False
            with self._lock:
                self._session = "" if self._session == session else self._session
        self._establish(node)
        return bool(session)

    def _establish(self, node: str) -> None:
        adopted = self._adopt(node)
        session = adopted or self._create(node)
        if not session:
            return  # the node is not in the catalog yet: the next beat tries again
        try:
            self._take_lock(node, session)
        except NodeLockTaken:
            if not adopted:  # not one session more at every beat while the name is shared
                self._api.request("PUT", f"/v1/session/destroy/{path_segment(session)}")
            raise
        with self._lock:
            self._session = session
        self._alive(node, session)

    def _take_lock(self, node: str, session: str) -> None:
        """Acquire the node's lock, unless `session` (adopted) holds it already."""
        key = self._key("nodes", node)
        held = self._api.request("GET", key, missing_ok=True)
        if held.status != 404 and (held.json() or [{}])[0].get("Session") == session:
            return
        taken = self._api.request("PUT", key, params={"acquire": session}, payload=node)
        if taken.json() is not True:
            raise NodeLockTaken(
                f"{key[len('/v1/kv/') :]} is held by another session: is another registrator "
                f"running with host identity {node!r}?"
            )

    def _adopt(self, node: str) -> str:
        """A live session a previous run of this registrator left on its node, renewed."""
        path = f"/v1/session/node/{path_segment(node)}"
        sessions = self._api.request("GET", path).json() or []
        for found in sessions:
            if (
                found.get("Name") == f"registrator catalog {node}"
                and found.get("TTL") == f"{self._ttl}s"
            ):
                renewed = f"/v1/session/renew/{path_segment(str(found['ID']))}"
                if self._api.request("PUT", renewed, missing_ok=True).ok:
                    return str(found["ID"])
        return ""

    def _create(self, node: str) -> str:
        body = {
            "Name": f"registrator catalog {node}",
            "Node": node,
            "NodeChecks": [],
            "TTL": f"{self._ttl}s",
            "Behavior": "release",
            "LockDelay": "0s",
        }
        try:
            created = self._api.request("PUT", "/v1/session/create", payload=body).json()
        except RegistryDenied as e:
            raise RegistryDenied(f"{e}: {DENIED_HINT.format(node=node)}") from e
        except RegistryUnavailable as e:
            if _NO_NODE in str(e):
                return ""
            raise
        return str(created["ID"])

    def _alive(self, node: str, session: str) -> None:
        """The node check passing, written only when it is missing or not passing."""
        checks = self._api.request("GET", f"/v1/health/node/{path_segment(node)}").json() or []
        if any(c.get("CheckID") == ALIVE_CHECK and c.get("Status") == "passing" for c in checks):
            return
        lock = self._rel("nodes", node)
        holds = {"KV": {"Verb": "check-session", "Key": lock, "Session": session}}
        self._txn([holds, _alive_op(node, "passing", f"held by session {session}")])

    def watch(self, index: int, wait: float) -> Watched:
        """The liveness keys, once they changed since `index` or `wait` seconds passed."""
        params = {"recurse": "", "index": str(index), "wait": f"{max(1, round(wait))}s"}
        timeout = wait + wait / 16 + 10  # Consul adds up to wait/16 of jitter
        path = f"/v1/kv/{self._prefix}/"
        answer = self._api.request("GET", path, params=params, missing_ok=True, timeout=timeout)
        raw = (answer.json() or []) if answer.status != 404 else []
        try:
            new = int(answer.header("X-Consul-Index") or 0)
        except ValueError:
            new = 0
        tree, bad = parse_tree(self._prefix, raw)
        return Watched(new if new >= index else 0, tree, bad)

    def claim(self, node: str, *, dead_index: int, since: float) -> bool:
        """Acquire `reap/<node>` with this session; False when another holds it."""
        session = self.session
        if not session:
            return False
        record = {"dead_index": dead_index, "since": since}
        answer = self._api.request(
            "PUT", self._key("reap", node), params={"acquire": session}, payload=record
        )
        return answer.json() is True

    def mark_dead(self, node: str, index: int) -> str:
        """The node's check critical, if its lock is still at `index`: "marked", "changed",
        "gone" (no such node) or "foreign" (not registrator's node)."""
        found = self._node_of(node)
        if found is None:
            return "gone"
        if not is_registrators(found.get("Node"), node):
            return "foreign"
        lock = self._rel("nodes", node)
        unchanged = {"KV": {"Verb": "check-index", "Key": lock, "Index": index}}
        output = f"registrator's session on {node} ran out (lock index {index})"
        marked = self._txn([unchanged, _alive_op(node, "critical", output)])
        return "marked" if marked else "changed"

    def reap(self, node: str, index: int) -> tuple[str, int]:
        """Deregister the node, if its lock is still at `index`: ("reaped", services it had),
        or ("changed" | "gone" | "foreign", 0). Its keys are deleted with it (a foreign node's
        too: it is left as it is, and no longer watched)."""
        found = self._node_of(node)
        foreign = found is not None and not is_registrators(found.get("Node"), node)
        lock = self._api.request("GET", self._key("nodes", node), missing_ok=True)
        current = (lock.json() or [{}])[0] if lock.status != 404 else {}
        if current and (current.get("Session") or current.get("ModifyIndex") != index):
            return "changed", 0
        if found is not None and not foreign:
            self._api.request("PUT", "/v1/catalog/deregister", payload={"Node": node})
        if current:
            params = {"cas": str(index)}
            self._api.request("DELETE", self._key("nodes", node), params=params)
        self._api.request("DELETE", self._key("reap", node))
        if foreign or not found:
            return ("foreign" if foreign else "gone"), 0
        return "reaped", len(found.get("Services") or {})

    def drop_claim(self, node: str, index: int) -> None:
        """Delete the claim on `node`, if nobody changed it since `index`."""
        self._api.request("DELETE", self._key("reap", node), params={"cas": str(index)})

    def _node_of(self, node: str) -> dict[str, Any] | None:
        path = f"/v1/catalog/node/{path_segment(node)}"
        found: dict[str, Any] | None = self._api.request("GET", path, missing_ok=True).json()
        return found or None

    def _txn(self, ops: list[dict[str, Any]]) -> bool:
        """False when one of the transaction's checks failed (Consul answers 409)."""
        answer = self._api.request("PUT", "/v1/txn", payload=ops, conflict_ok=True)
        if answer.status == 409 and "permission denied" in answer.text.lower():
            raise RegistryDenied(f"PUT /v1/txn: {answer.text.strip()[:200]}")
        return answer.status != 409

    def _rel(self, kind: str, node: str) -> str:
        return f"{self._prefix}/{kind}/{node}"

    def _key(self, kind: str, node: str) -> str:
        return f"/v1/kv/{self._prefix}/{kind}/{path_segment(node)}"


def _alive_op(node: str, status: str, output: str) -> dict[str, Any]:
    check = {
        "Node": node,
        "CheckID": ALIVE_CHECK,
        "Name": ALIVE_NAME,
        "Status": status,
        "Output": output,
        "Definition": {},
    }
    return {"Check": {"Verb": "set", "Check": check}}
