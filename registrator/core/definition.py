"""The parts of a Consul service definition beyond name, address, tags and Meta. Pure.

- `SERVICE_WEIGHT_PASSING`, `SERVICE_WEIGHT_WARNING`: Consul's DNS SRV weights. Both are
  always sent (a half-set value made Consul before 1.4.1 resync forever, and what the agent
  reports back must equal what was sent).
- `SERVICE_ENABLE_TAG_OVERRIDE`: tags edited in the catalog win over the registered ones.
- `SERVICE_PORT`: container ports to treat as exposed (workers that neither `EXPOSE` nor
  publish anything, Swarm tasks).

Each has a per-port form except `SERVICE_PORT`, which names ports. A value that cannot be
honoured is reported and Consul's default is used.
"""

from __future__ import annotations

import dataclasses
from typing import cast

from registrator.core.declarations import Declarations, port_number
from registrator.core.flags import parse_flag
from registrator.core.model import Container, Port, Protocol, Weights
from registrator.core.policy import Findings

#: Consul keeps DNS SRV weights in 16 bits; a passing weight of 0 it refuses.
MAX_WEIGHT = 65535
_PROTOCOLS = ("tcp", "udp", "sctp")


def weights(decl: Declarations, port: int, found: Findings) -> Weights:
    """`Weights` from the declarations that apply to `port`; 1 for a value not declared."""
    return Weights(
        passing=_weight(decl, "WEIGHT_PASSING", port, found, lowest=1),
        warning=_weight(decl, "WEIGHT_WARNING", port, found, lowest=0),
    )


def _weight(decl: Declarations, key: str, port: int, found: Findings, *, lowest: int) -> int:
    declared = decl.get(key, port)
    if declared is None or not declared.value.strip():
        return 1
    value = declared.value.strip()
    if value.isascii() and value.isdigit() and lowest <= int(value) <= MAX_WEIGHT:
        return int(value)
    reason = f"not a weight (a whole number from {lowest} to {MAX_WEIGHT}); Consul's 1 is used"
    found.problem(declared.source, declared.value, reason)
    return 1


def tag_override(decl: Declarations, port: int, found: Findings) -> bool:
    declared = decl.get("ENABLE_TAG_OVERRIDE", port)
    if declared is None or not declared.value.strip():
        return False
    parsed = parse_flag(declared.value)
    if parsed is None:
        found.problem(declared.source, declared.value, "not true or false; left off")
    return bool(parsed)


def with_declared_ports(container: Container, decl: Declarations, found: Findings) -> Container:
    """`container` with the ports `SERVICE_PORT` names (`9100`, `53/udp`, comma-separated)
    added as exposed, unless it has them already (then its own bindings stay)."""
    declared = decl.generic.get("PORT")
    if declared is None or not declared.value.strip():
        return container
    ports = {p.key: p for p in container.ports}
    for item in declared.value.split(","):
        port = _port(item)
        if port is None:
            reason = "not a container port (8080, or 53/udp; comma-separated); ignored"
            found.problem(declared.source, item.strip(), reason)
        elif port.key not in ports:
            ports[port.key] = port
    if len(ports) == len(container.ports):
        return container
    exposed = tuple(sorted(ports.values(), key=lambda p: (p.port, p.protocol)))
    return dataclasses.replace(container, ports=exposed)


def _port(item: str) -> Port | None:
    number, _, protocol = item.strip().partition("/")
    protocol = protocol.strip().lower() or "tcp"
    parsed = port_number(number)
    if parsed is None or protocol not in _PROTOCOLS:
        return None
    return Port(parsed, cast(Protocol, protocol))
