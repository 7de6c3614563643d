"""The catalog's side of a service, as `PUT /v1/txn` operations, and a transaction's errors.

A registration is one transaction: the node (unchanged when it already is), the service deleted
and set again with all of its checks. Deleting first removes the checks the registration no
longer has (maintenance included), as the agent's `replace-existing-checks` does, in one atomic
write: no reader ever sees the service missing. The service's JSON is the agent's
(`consul.payload`), without `Checks` and with Consul's own field name `Service` for the name.

A transaction decodes strictly: a field Consul does not know refuses the whole write. So a
check's `Definition` carries only the fields of Consul's HealthCheckDefinition that describe
what registrator probes; thresholds and the rest are registrator's to apply, and in the Notes'
digest. A transaction keeps no check `Type`, so comparing never looks at it (`stored`), and
the catalog keeps no TTL: registrator applies it, and refuses one Go cannot parse.
"""

from __future__ import annotations

from typing import Any

from registrator.core.durations import DurationError, nanoseconds
from registrator.core.errors import RegistryDenied, RegistryRefused
from registrator.core.model import Check, Service
from registrator.registries.consul.agent import MAINTENANCE_CHECK_PREFIX
from registrator.registries.consul.payload import check_payload, service_payload

#: what a refusal for a missing permission means in catalog mode
CATALOG_ACL_HINT = "the ACL token needs node:write and service:write (see README, ACL)"

#: Consul 1.8 runs at most this many operations in one transaction
MAX_OPS = 64
#: the fields of a check that are not part of its definition
_CHECK_FIELDS = frozenset({"CheckID", "Name", "Notes", "Status"})
#: what of a definition the catalog keeps (Consul's HealthCheckDefinition)
_DEFINITION_FIELDS = frozenset(
    {"HTTP", "TLSSkipVerify", "Header", "Method", "TCP", "Interval", "Timeout"}
    | {"DeregisterCriticalServiceAfter"}
)
MAINTENANCE_NAME = "Service Maintenance Mode"


def service_ops(node: str, service: Service) -> list[dict[str, Any]]:
    """The service replaced whole on `node`: deleted, set, and each of its checks set."""
    body = service_payload(service)
    del body["Checks"]
    body["Service"] = body.pop("Name")
    gone = {"ID": service.id, "Service": service.name}
    ops: list[dict[str, Any]] = [
        {"Service": {"Verb": "delete", "Node": node, "Service": gone}},
        {"Service": {"Verb": "set", "Node": node, "Service": body}},
    ]
    ops += [check_op(node, service.id, check) for check in service.checks]
    return ops


def check_op(node: str, service_id: str, check: Check) -> dict[str, Any]:
    """One check of `service_id` set with its status and output (critical when it has none,
    as Consul starts a check)."""
    payload = check_payload(check)
    _refuse_bad_ttl(check)
    definition = {k: v for k, v in payload.items() if k in _DEFINITION_FIELDS}
    body = {k: v for k, v in payload.items() if k in _CHECK_FIELDS}
    body.update(Node=node, ServiceID=service_id, Definition=definition, Output=check.output)
    body["Status"] = status_of(check)
    return {"Check": {"Verb": "set", "Check": body}}


def status_of(check: Check) -> str:
    """The status a check is written with: its own, else its initial status, else critical."""
    return check.status or str(dict(check.definition).get("Status") or "critical")


def _refuse_bad_ttl(check: Check) -> None:
    """The catalog keeps no TTL (registrator applies it), so nothing in Consul would refuse one
    Go cannot parse: refused here, as the agent refuses it (the core's parser says which)."""
    ttl = dict(check.definition).get("TTL")
    if isinstance(ttl, str):
        try:
            nanoseconds(ttl)
        except DurationError as e:
            raise RegistryRefused(f"check {check.id}: invalid duration {ttl}: {e}") from e


def maintenance_op(node: str, service_id: str, reason: str) -> dict[str, Any]:
    """The agent's maintenance check, in the catalog: `_service_maintenance:<id>`, critical,
    the reason in its Notes."""
    body = {
        "Node": node,
        "CheckID": f"{MAINTENANCE_CHECK_PREFIX}{service_id}",
        "Name": MAINTENANCE_NAME,
        "Notes": reason or "maintenance",
        "Status": "critical",
        "ServiceID": service_id,
        "Definition": {},
    }
    return {"Check": {"Verb": "set", "Check": body}}


def raise_errors(what: str, answer: Any) -> None:
    """A transaction Consul rolled back (409): a missing permission, or a refused value."""
    errors = (answer or {}).get("Errors") or ()
    text = "; ".join(str(e.get("What", "")) for e in errors) or "rolled back"
    if any("permission denied" in str(e.get("What", "")).lower() for e in errors):
        raise RegistryDenied(f"{what}: {text}", hint=CATALOG_ACL_HINT)
    raise RegistryRefused(f"{what}: {text}")
