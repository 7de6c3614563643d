"""IPv4 and IPv6: which of a port's addresses is registered, and the tagged addresses. Pure.

A container on an IPv6-enabled network has an IPv4 and an IPv6 address there; a port can be
published on both families. `SERVICE_ADDRESS_FAMILY=ipv4|ipv6` (per port too) chooses the one
registered; without it IPv4 is registered when there is one, else IPv6. Every address the
service has is also sent as a Consul tagged address, `lan_ipv4` and `lan_ipv6`, so a client
that wants the other family finds it in the catalog.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from registrator.core.declarations import Declarations
from registrator.core.model import Binding, Family, TaggedAddress
from registrator.core.policy import Findings

FAMILIES: tuple[Family, ...] = ("ipv4", "ipv6")
#: The tagged-address keys registrator sends; any other key is not registrator's to compare.
TAGGED_KEYS = frozenset(f"lan_{family}" for family in FAMILIES)
#: A binding to every address of one family (`0.0.0.0`, `::`); "" is Docker's "every address".
_EVERY_ADDRESS: dict[str, Family] = {"0.0.0.0": "ipv4", "::": "ipv6"}


def family_of(address: str) -> Family | None:
    """`ipv4` or `ipv6` for an IP literal; None for anything else (a host name, "")."""
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        return None
    return "ipv6" if version == 6 else "ipv4"


def declared_family(decl: Declarations, port: int, found: Findings) -> Family | None:
    """`SERVICE_ADDRESS_FAMILY` (or `SERVICE_<port>_ADDRESS_FAMILY`); None when not declared
    or not a family (which is reported, and the default applies)."""
    declared = decl.get("ADDRESS_FAMILY", port)
    if declared is None or not declared.value.strip():
        return None
    value = declared.value.strip().lower()
    if value in FAMILIES:
        return value
    found.problem(
        declared.source, declared.value, "not an address family (ipv4, ipv6); the default is used"
    )
    return None


def pick_binding(bindings: Iterable[Binding], family: Family | None = None) -> Binding | None:
    """One binding per port however many Docker reports: one of `family` when asked for (a
    binding to every address counts for its family), else IPv4 first; then the lowest host
    port. None when no binding is of that family."""
    usable = [b for b in bindings if family is None or binding_family(b) in (family, None)]
    if not usable:
        return None
    ipv6_first = family == "ipv6"
    return min(usable, key=lambda b: ((":" in b.host_ip) != ipv6_first, b.host_port, b.host_ip))


def binding_family(binding: Binding) -> Family | None:
    """The family a binding listens on; None for Docker's "" (every address)."""
    return _EVERY_ADDRESS.get(binding.host_ip) or family_of(binding.host_ip)


def is_specific(host_ip: str) -> bool:
    """Whether a binding names one address (rather than every address of a family)."""
    return bool(host_ip) and host_ip not in _EVERY_ADDRESS


def tagged(addresses: Iterable[tuple[str, int]]) -> tuple[TaggedAddress, ...]:
    """`lan_ipv4` / `lan_ipv6` for each IP literal among `addresses` (first one per family)."""
    found: dict[str, TaggedAddress] = {}
    for address, port in addresses:
        family = family_of(address)
        if family is not None:
            found.setdefault(f"lan_{family}", TaggedAddress(f"lan_{family}", address, port))
    return tuple(sorted(found.values(), key=lambda t: t.key))
