"""Consul's catalog as the registry: registrator's own node, for a host that runs no agent.

`consul-catalog://HOST:PORT` (and `consul-catalog-tls://`) reach any server, a load balancer in
front of the servers, or a client agent: the catalog is the same through each. Every write
names registrator's node explicitly (`node.py`) and goes through `PUT /v1/txn` (`txn.py`), so
it lands on that node whichever server answers.

Reads are `?consistent`: the leader checks with a quorum that it still leads before it answers.
Behind a balancer each read may reach another server; a plain read is forwarded to the leader
too, but a server deposed a moment ago can still answer one from a copy that lacks the last
writes, and a full pass would then register again what it just wrote. The quorum check costs a
round of heartbeats on two reads per full pass, and makes "not in the catalog" mean it.

A node of the same name that is not registrator's (no `registrator_host` node meta) is never
written: every call raises `NodeTaken`, a `RegistryDenied`, which the runtime reports once.

Writes of several services that come at the same moment (a burst, a full pass) go in one
transaction (`batch.py`), up to Consul 1.8's 64 operations.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Collection, Mapping
from typing import Any

from registrator.core.errors import RegistryDenied, RegistryError
from registrator.core.model import OWNER_META_KEY, Check, Service, ServiceID
from registrator.core.plan import Action
from registrator.registries.catalog.batch import Batches
from registrator.registries.catalog.node import is_registrators, node_op
from registrator.registries.catalog.txn import (
    CATALOG_ACL_HINT,
    MAX_OPS,
    check_op,
    maintenance_op,
    raise_errors,
    service_ops,
    status_of,
)
from registrator.registries.consul.agent import (
    MAINTENANCE_CHECK_PREFIX,
    ConsulAgent,
    checks_by_service,
)
from registrator.registries.consul.held import applied, reported
from registrator.registries.consul.payload import service_from_agent
from registrator.registries.consul.target import ConsulTarget
from registrator.wire import path_segment

_CONSISTENT = {"consistent": ""}


class NodeTaken(RegistryDenied):
    """The catalog holds a node of this name that is not registrator's."""

    hint = "rename this host (--hostname) or remove that node; nothing is written meanwhile"


class ConsulCatalog:
    """Registers this host's services under a catalog node of its own."""

    def __init__(self, target: ConsulTarget, *, timeout: float = 10) -> None:
        #: Consul's HTTP API through whichever server (or agent) the address reaches
        self._api = ConsulAgent(target, timeout=timeout)
        self._lock = threading.Lock()
        self._node = ""
        self._address = ""
        #: the node was read and is registrator's (or absent): writes may name it
        self._checked = False
        #: check ID -> its service, status and output, as last read or written: a status
        #: write names the check's service, and a registration keeps a check's state
        self._held: dict[str, tuple[ServiceID, str, str]] = {}
        head = lambda: [node_op(self._node, self._address)]  # noqa: E731
        self._batches = Batches(self._txn_once, limit=MAX_OPS, head=head)

    def own_node(self, name: str, address: str) -> None:
        """Work with the node `name` (the host identity) at `address` (`--ip`)."""
        with self._lock:
            self._node, self._address, self._checked = name, address, False

    @property
    def address(self) -> str:
        return self._address

    def advertise_address(self) -> str:
        """The node's address: where the services of this host are reachable."""
        return self._address

    def node(self) -> str:
        """Always registrator's own node, whichever server answered."""
        return self._node

    def ping(self, *, timeout: float = 3.0) -> None:
        self._api.ping(timeout=timeout)

    def close(self) -> None:
        self._api.close()

    def services(
        self,
        *,
        owner: str,
        ids: Collection[ServiceID] | None = None,
        with_checks: bool = True,
    ) -> dict[ServiceID, Service]:
        """The node's services marked as `owner`'s, with their checks and maintenance."""
        if ids is not None and not ids:
            return {}
        listed = self._read(f"/v1/catalog/node/{path_segment(self._node)}") or {}
        self._own(listed.get("Node"))
        owned = [
            raw
            for raw in (listed.get("Services") or {}).values()
            if (raw.get("Meta") or {}).get(OWNER_META_KEY) == owner
            and (ids is None or raw.get("ID") in ids)
        ]
        checks = self._checks() if owned and with_checks else {}
        by_service = checks_by_service(checks)
        maintenance = {
            str(c.get("ServiceID")): str(c.get("Notes") or "maintenance")
            for cid, c in checks.items()
            if cid.startswith(MAINTENANCE_CHECK_PREFIX)
        }
        found = [
            service_from_agent(raw, maintenance, by_service.get(str(raw.get("ID")), ()))
            for raw in owned
        ]
        for service in found:
            self._remember(service.id, service.checks)
        return {s.id: s for s in found}

    def stored(self, service: Service) -> Service:
        """As the agent reports it (`reported`), and without check types: a transaction
        does not keep them."""
        held = reported(service)
        checks = tuple(dataclasses.replace(c, kind="") for c in held.checks)
        return dataclasses.replace(held, checks=checks)

    def applied(self, action: Action, held: Service | None) -> Service | None:
        return applied(action, held, self.stored)

    def register(self, service: Service) -> None:
        """The service replaced whole; a check it already had keeps its status and output,
        as the agent keeps them (a new one starts as it says, else critical)."""
        with self._lock:
            held = {c.id: self._held.get(c.id) for c in service.checks}
        checks = tuple(
            dataclasses.replace(c, status=h[1], output=h[2])
            if h
            else dataclasses.replace(c, output="")
            for c, h in ((c, held[c.id]) for c in service.checks)
        )
        started = dataclasses.replace(service, checks=checks)
        self._txn(f"register {service.id}", service_ops(self._node, started))
        self._remember(service.id, started.checks)

    def deregister(self, service: ServiceID) -> None:
        """Remove `service` and its checks; one already gone counts as removed."""
        self._ensure_own()
        body = {"Node": self._node, "ServiceID": service}
        self._deregister(body)
        with self._lock:
            self._held = {c: held for c, held in self._held.items() if held[0] != service}

    def set_maintenance(self, service: ServiceID, *, enabled: bool, reason: str = "") -> None:
        """The agent's maintenance check, kept in the catalog: critical, with the reason."""
        if enabled:
            self._txn(f"maintenance {service}", [maintenance_op(self._node, service, reason)])
            return
        self._ensure_own()
        body = {"Node": self._node, "CheckID": f"{MAINTENANCE_CHECK_PREFIX}{service}"}
        self._deregister(body)

    def update_ttl(self, check: Check) -> None:
        """Write a check's status and output (a check registrator runs or drives)."""
        with self._lock:
            held = self._held.get(check.id)
        if held is None:
            raise RegistryError(f"check {check.id}: not a check of a registered service")
        self._txn(f"check {check.id}", [check_op(self._node, held[0], check)])
        self._remember(held[0], (check,))

    def txn(self, what: str, ops: list[dict[str, Any]]) -> Any:
        """Run `ops` in transactions of at most `MAX_OPS`; the results of the last one."""
        result: Any = None
        for start in range(0, len(ops), MAX_OPS):
            result = self._txn_once(what, ops[start : start + MAX_OPS])
        return result

    def _txn_once(self, what: str, ops: list[dict[str, Any]]) -> Any:
        answer = self._api.request("PUT", "/v1/txn", payload=ops, conflict_ok=True)
        if answer.status == 409:
            raise_errors(what, answer.json())
        return answer.json()

    def _txn(self, what: str, ops: list[dict[str, Any]]) -> None:
        """`ops` on our node, with the node set first (a node removed meanwhile comes back),
        in one transaction with the writes of other services that come at the same time."""
        self._ensure_own()
        self._batches.write(what, ops)

    def _deregister(self, body: dict[str, str]) -> None:
        """`PUT /v1/catalog/deregister`: a service or a check of our node, gone already or not."""
        try:
            self._api.request("PUT", "/v1/catalog/deregister", payload=body)
        except RegistryDenied as e:  # the agent's hint names agent permissions
            raise RegistryDenied(str(e), hint=CATALOG_ACL_HINT) from e

    def _ensure_own(self) -> None:
        with self._lock:
            checked = self._checked
        if not checked:
            listed = self._read(f"/v1/catalog/node/{path_segment(self._node)}") or {}
            self._own(listed.get("Node"))

    def _own(self, node: Mapping[str, Any] | None) -> None:
        """Raise `NodeTaken` unless `node` (as read) is absent or registrator's."""
        if node and not is_registrators(node, self._node):
            with self._lock:
                self._checked = False
            raise NodeTaken(
                f"catalog node {self._node!r} exists and is not registrator's "
                f"(its node meta has no registrator_host={self._node}): not written"
            )
        with self._lock:
            self._checked = True

    def _checks(self) -> dict[str, Any]:
        listed = self._read(f"/v1/health/node/{path_segment(self._node)}") or []
        return {str(c.get("CheckID")): c for c in listed if c.get("ServiceID")}

    def _read(self, path: str) -> Any:
        return self._api.request("GET", path, params=_CONSISTENT).json()

    def _remember(self, service: ServiceID, checks: Collection[Check]) -> None:
        with self._lock:
            self._held.update((c.id, (service, status_of(c), c.output)) for c in checks)
