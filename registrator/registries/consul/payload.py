"""Consul's JSON for a service, both ways: what is sent to the agent and what it reports.

What is read back is what was sent, in the same form, and only that: the tagged addresses
Consul adds by itself and the check definitions it does not report are left out, so comparing
the two never sees a change that is not one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registrator.core.families import TAGGED_KEYS
from registrator.core.model import (
    Check,
    CheckValue,
    Service,
    ServiceID,
    TaggedAddress,
    Weights,
)


def service_payload(service: Service) -> dict[str, Any]:
    """The body of `PUT /v1/agent/service/register` for `service`."""
    return {
        "ID": service.id,
        "Name": service.name,
        "Address": service.address,
        "Port": service.port,
        "Tags": list(service.tags),
        "Meta": dict(service.meta),
        "TaggedAddresses": {
            t.key: {"Address": t.address, "Port": t.port} for t in service.tagged_addresses
        },
        "Weights": {"Passing": service.weights.passing, "Warning": service.weights.warning},
        "EnableTagOverride": service.enable_tag_override,
        "Checks": [check_payload(check) for check in service.checks],
    }


def check_payload(check: Check) -> dict[str, Any]:
    """One entry of a registration's `Checks`; a driven TTL check starts at its status."""
    payload: dict[str, Any] = {"CheckID": check.id, "Name": check.name, "Notes": check.notes}
    payload.update((key, _json_value(value)) for key, value in check.definition)
    if check.status is not None:
        payload["Status"] = check.status
    return payload


def _json_value(value: CheckValue) -> Any:
    """Tuples back to JSON: an argv to a list, (name, values) pairs to a header object."""
    if not isinstance(value, tuple):
        return value
    if value and isinstance(value[0], tuple):
        return {name: list(values) for name, values in value}
    return list(value)


def service_from_agent(
    data: Mapping[str, Any],
    in_maintenance: Mapping[str, str] | None = None,
    checks: tuple[Check, ...] = (),
) -> Service:
    """A service as `GET /v1/agent/services` reports it, with what `/agent/checks` says of it:
    its checks, and whether it is in maintenance."""
    return Service(
        id=ServiceID(str(data.get("ID", ""))),
        name=str(data.get("Service", "")),
        address=str(data.get("Address") or ""),
        port=int(data.get("Port") or 0),
        tags=tuple(str(t) for t in data.get("Tags") or ()),
        meta=tuple(sorted((str(k), str(v)) for k, v in (data.get("Meta") or {}).items())),
        checks=checks,
        tagged_addresses=tagged_from_agent(data.get("TaggedAddresses") or {}),
        weights=weights_from_agent(data.get("Weights") or {}),
        enable_tag_override=bool(data.get("EnableTagOverride")),
        maintenance=(in_maintenance or {}).get(str(data.get("ID", "")), ""),
    )


def tagged_from_agent(raw: Mapping[str, Any]) -> tuple[TaggedAddress, ...]:
    """The tagged addresses registrator sends (`lan_ipv4`, `lan_ipv6`), in the form it sends
    them; the ones Consul adds by itself (`wan_ipv4` beside an IPv4 address, ...) are left
    out, so they never read as a change."""
    found = (
        TaggedAddress(str(key), str(value.get("Address") or ""), int(value.get("Port") or 0))
        for key, value in raw.items()
        if key in TAGGED_KEYS and isinstance(value, Mapping)
    )
    return tuple(sorted(found, key=lambda t: t.key))


def weights_from_agent(raw: Mapping[str, Any]) -> Weights:
    """Consul reports 1 and 1 for a service registered without weights, as for its default."""
    return Weights(passing=int(raw.get("Passing", 1)), warning=int(raw.get("Warning", 1)))


def check_from_agent(data: Mapping[str, Any]) -> Check:
    """A check as `GET /v1/agent/checks` reports it: no definition in Consul 1.8."""
    return Check(
        id=str(data.get("CheckID", "")),
        name=str(data.get("Name", "")),
        kind=str(data.get("Type") or ""),
        notes=str(data.get("Notes") or ""),
        status=str(data.get("Status") or ""),
        output=str(data.get("Output") or ""),
    )
