"""Consul's JSON for a service, both ways: what is sent to the agent and what it reports.

What is read back is what was sent, in the same form, and only that: the tagged addresses
Consul adds by itself and the check definitions it does not report are left out, so comparing
the two never sees a change that is not one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from registrator.core.families import TAGGED_KEYS
from registrator.core.model import (
    SIDECAR_SUFFIX,
    Check,
    CheckValue,
    Connect,
    Service,
    ServiceID,
    TaggedAddress,
    Upstream,
    Weights,
)


def service_payload(service: Service) -> dict[str, Any]:
    """The body of `PUT /v1/agent/service/register` for `service`."""
    payload = _plain_payload(service)
    if service.connect is not None:
        payload["Connect"] = connect_payload(service, service.connect)
    return payload


def _plain_payload(service: Service) -> dict[str, Any]:
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


def connect_payload(service: Service, connect: Connect) -> dict[str, Any]:
    """`Connect` of a registration: native, or the sidecar the agent registers beside it.

    The sidecar carries the service's tags and Meta (its owner mark among them), and its proxy
    binds where the catalog says it is: other proxies dial that address."""
    if connect.native:
        return {"Native": True}
    listens = connect.address or connect.local_address
    proxy: dict[str, Any] = {
        "LocalServiceAddress": connect.local_address,
        "LocalServicePort": connect.local_port,
        "Upstreams": [
            {
                "DestinationType": "service",
                "DestinationName": u.destination,
                "Datacenter": u.datacenter,
                "LocalBindAddress": u.bind_address,
                "LocalBindPort": u.bind_port,
            }
            for u in connect.upstreams
        ],
        "Config": {"bind_address": listens},
    }
    sidecar: dict[str, Any] = {"Tags": list(service.tags), "Meta": dict(service.meta)}
    if connect.address:
        sidecar["Address"] = connect.address
    if connect.port:
        sidecar["Port"] = connect.port
    if connect.checks:
        sidecar["Checks"] = [check_payload(check) for check in connect.checks]
    return {"SidecarService": {**sidecar, "Proxy": proxy}}


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
        connect=Connect(native=True) if (data.get("Connect") or {}).get("Native") else None,
    )


def services_from_agent(
    raws: list[Mapping[str, Any]],
    in_maintenance: Mapping[str, str],
    checks: Mapping[str, tuple[Check, ...]],
) -> dict[ServiceID, Service]:
    """The agent's services, each sidecar proxy read into the service it was registered with
    (as `Connect`), so the pair is compared, planned and removed as one."""
    listed = {str(raw.get("ID", "")) for raw in raws}
    sidecars = {parent: raw for raw in raws if (parent := sidecar_parent(raw)) in listed}
    folded = {str(raw.get("ID", "")) for raw in sidecars.values()}
    found: dict[ServiceID, Service] = {}
    for raw in raws:
        sid = str(raw.get("ID", ""))
        if sid in folded:
            continue
        service = service_from_agent(raw, in_maintenance, checks.get(sid, ()))
        sidecar = sidecars.get(sid)
        if sidecar is not None:
            service = with_sidecar(service, sidecar, in_maintenance, checks)
        found[service.id] = service
    return found


def sidecar_parent(raw: Mapping[str, Any]) -> str | None:
    """The ID of the service whose sidecar `raw` is, as the agent registers one: None for
    any other service (a proxy registered on its own is a service of its own)."""
    if raw.get("Kind") != "connect-proxy":
        return None
    parent = str((raw.get("Proxy") or {}).get("DestinationServiceID") or "")
    return parent if parent and raw.get("ID") == f"{parent}{SIDECAR_SUFFIX}" else None


def with_sidecar(
    service: Service,
    raw: Mapping[str, Any],
    in_maintenance: Mapping[str, str],
    checks: Mapping[str, tuple[Check, ...]],
) -> Service:
    """`service` with its sidecar as `Connect`; the maintenance of the pair says when only
    one of them is in maintenance, so comparing sees that as a change."""
    sid = str(raw.get("ID", ""))
    proxy = raw.get("Proxy") or {}
    address = str(raw.get("Address") or "")
    connect = Connect(
        upstreams=tuple(_upstream(u) for u in proxy.get("Upstreams") or ()),
        local_address=str(proxy.get("LocalServiceAddress") or ""),
        local_port=int(proxy.get("LocalServicePort") or 0),
        address="" if address == service.address else address,
        port=int(raw.get("Port") or 0),
        checks=tuple(c for c in checks.get(sid, ()) if not _consul_default(c, sid)),
    )
    own, its = service.maintenance, in_maintenance.get(sid, "")
    both = own if own == its else f"{own or 'none'} (its sidecar: {its or 'none'})"
    return dataclasses.replace(service, connect=connect, maintenance=both)


def _upstream(raw: Mapping[str, Any]) -> Upstream:
    return Upstream(
        destination=str(raw.get("DestinationName") or ""),
        bind_port=int(raw.get("LocalBindPort") or 0),
        datacenter=str(raw.get("Datacenter") or ""),
        bind_address=str(raw.get("LocalBindAddress") or "127.0.0.1"),
    )


def _consul_default(check: Check, sidecar: str) -> bool:
    """The checks the agent adds to a sidecar registered without checks: numbered IDs."""
    number = check.id.removeprefix(f"service:{sidecar}:")
    return check.id != number and number.isdigit() and not check.notes


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
