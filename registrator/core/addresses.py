"""Where a container port is reachable: the address and port its service is registered at.

The rules (behaviour.md, section 2), in the order they are tried:

- `-useIpFromLabel LABEL`: the label's address replaces whatever the rules below would give
  (a `/NN` suffix is dropped); when the label is missing or invalid they apply as usual.
- `--net=host`: the exposed port, at the host's address.
- `-internal`: the container's own address on its network, and the container port.
- otherwise the published port: the host port, at the binding's host IP when it is a specific
  address, else at the host's address. An exposed but unpublished port is not registered,
  except on a Swarm task: there it is the rule, not the exception (a task publishes a port only
  with `mode=host`), so the task's own address and the container port are registered. A task's
  address is never taken on `ingress`, the routing mesh's network.

The host's address is `-ip`, else the address the local Consul agent advertises. A container
started with `--network container:<id>` lives in that container's network, so the peer's
networks and published ports are the ones that count. Which family (IPv4 or IPv6) is
registered, and the tagged addresses naming both, is `families`' part; `check_endpoint` finds
where `SERVICE_CHECK_PORT` sends a service's checks by these same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from registrator.core.declarations import Declarations, Declared, port_number
from registrator.core.families import (
    binding_family,
    declared_family,
    family_of,
    is_specific,
    pick_binding,
    tagged,
)
from registrator.core.label_address import label_address
from registrator.core.model import (
    Binding,
    Container,
    Family,
    NetworkAddress,
    Port,
    TaggedAddress,
)
from registrator.core.policy import Findings, Policy


@dataclass(frozen=True, slots=True)
class NetworkView:
    """The network a container's ports live in: its own, or its peer's (`container:<id>`)."""

    mode: str
    #: network name -> addresses, as `Container.networks`
    networks: Mapping[str, NetworkAddress]
    #: port key ("80/tcp") -> the host bindings Docker reports for it
    bindings: Mapping[str, tuple[Binding, ...]]
    #: a Swarm task's: an unpublished port is reachable at the task's own address
    task: bool = False
    #: networks left out of `networks` because they are Swarm's routing mesh
    ingress: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    #: `lan_ipv4` / `lan_ipv6`: the registered address and the other family's, when known
    tagged: tuple[TaggedAddress, ...] = ()


@dataclass(frozen=True, slots=True)
class _Where:
    """Port and address by the rules; address None means "the container's own address"."""

    port: int
    address: str | None
    #: further (address, port) pairs the service is reachable at (the other family's binding)
    others: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class _Skip:
    """Why a port is not registered; `family` when SERVICE_ADDRESS_FAMILY is the cause."""

    why: str
    family: bool = False


def network_view(container: Container) -> NetworkView | None:
    """`container`'s network, or None when it shares one with a container that is unknown."""
    owner = container
    if container.network_peer_id is not None:
        if container.network_peer is None:
            return None
        owner = container.network_peer
    ingress = owner.swarm.ingress if owner.swarm is not None else ()
    return NetworkView(
        mode=owner.network_mode,
        networks={n: ip for n, ip in owner.networks.items() if n not in ingress},
        bindings={p.key: p.bindings for p in owner.ports},
        task=owner.swarm is not None,
        ingress=tuple(n for n in ingress if n in owner.networks),
    )


def endpoint(
    container: Container,
    port: Port,
    *,
    view: NetworkView,
    decl: Declarations,
    policy: Policy,
    found: Findings,
    declared_for: int | None = None,
) -> Endpoint | None:
    """Where `port` is registered, or None (with the reason in `found`) when nowhere.

    `declared_for` is the container port whose declarations (network, address family) apply,
    when it is not `port` itself (the port a service's checks probe).
    """
    key = port.port if declared_for is None else declared_for
    family = declared_family(decl, key, found)
    where = _port_and_address(port, view=view, policy=policy, family=family)
    if isinstance(where, _Skip):
        if where.family:
            _not_of_family(found, decl, key, port, where.why)
        else:
            found.skip(port.key, where.why)
        return None
    labelled = label_address(container, policy.use_ip_from_label, found)
    if labelled:
        return Endpoint(labelled, where.port, tagged([(labelled, where.port)]))
    if where.address is not None:
        pairs = [(where.address, where.port), *where.others]
        return Endpoint(where.address, where.port, tagged(pairs))
    network = _container_network(view, port, key=key, decl=decl, policy=policy, found=found)
    if network is None:
        return None
    address = network.of(family) if family else (network.ipv4 or network.ipv6)
    if not address:
        _not_of_family(found, decl, key, port, f"the container has no {family} address")
        return None
    pairs = [(address, where.port), (network.ipv4, where.port), (network.ipv6, where.port)]
    return Endpoint(address, where.port, tagged(pairs))


def check_endpoint(
    container: Container,
    port: Port,
    *,
    view: NetworkView,
    decl: Declarations,
    policy: Policy,
) -> tuple[Declared, Endpoint | str] | None:
    """`SERVICE_CHECK_PORT=N`: where the checks of `port`'s service probe instead, found by
    the same rules for container port N (its published binding; with `--internal` the
    container's address). None when not declared; the reason when N is not reachable."""
    declared = decl.get("CHECK_PORT", port.port)
    if declared is None or not declared.value.strip():
        return None
    number = port_number(declared.value)
    if number is None:
        return declared, "not a port number (1-65535)"
    target = Port(number, "tcp", view.bindings.get(f"{number}/tcp", ()))
    if not (policy.internal or view.mode == "host" or target.bindings):
        return declared, f"container port {number} is not published (or run with --internal)"
    scratch = Findings(container.name)
    where = endpoint(
        container, target, view=view, decl=decl, policy=policy, found=scratch,
        declared_for=port.port,
    )  # fmt: skip
    if where is None:
        why = "; ".join(reason for _, reason in scratch.skipped)
        return declared, f"container port {number} is not reachable ({why})"
    return declared, where


def _port_and_address(
    port: Port, *, view: NetworkView, policy: Policy, family: Family | None
) -> _Where | _Skip:
    if view.mode == "host":
        return _at_host_address(port.port, policy=policy, family=family)
    if policy.internal:
        return _Where(port.port, None)
    bindings = view.bindings.get(port.key, ())
    if not bindings and view.task:
        return _Where(port.port, None)
    if not bindings:
        return _Skip("exposed but not published")
    binding = pick_binding(bindings, family)
    if binding is None:
        return _Skip(f"not published on an {family} address", family=True)
    if not is_specific(binding.host_ip):
        return _published_at_host(bindings, policy=policy, family=family)
    others = tuple(
        (b.host_ip, b.host_port)
        for b in sorted(bindings, key=lambda b: b.host_port)
        if is_specific(b.host_ip) and binding_family(b) != binding_family(binding)
    )
    return _Where(binding.host_port, binding.host_ip, others)


def _published_at_host(
    bindings: tuple[Binding, ...], *, policy: Policy, family: Family | None
) -> _Where | _Skip:
    """A port published on every address, registered at the host's address: with the host
    port of the binding of that address's family, since Docker may give the IPv4 and the IPv6
    binding of one port different host ports (`0.0.0.0:33014`, `[::]:32998`)."""
    address = policy.host_ip or policy.advertise_address
    wanted = family or family_of(address)
    binding = pick_binding([b for b in bindings if not is_specific(b.host_ip)], wanted)
    if binding is None:
        why = f"not published on an {wanted} address (the host address {address} is {wanted})"
        return _Skip(why, family=True)
    return _at_host_address(binding.host_port, policy=policy, family=family)


def _at_host_address(number: int, *, policy: Policy, family: Family | None) -> _Where | _Skip:
    """The host's address: `-ip`, else the agent's; refused when it is not of `family`."""
    address = policy.host_ip or policy.advertise_address
    if family is not None and family_of(address) not in (family, None):
        return _Skip(f"the host address {address} is not {family} (--ip sets it)", family=True)
    return _Where(number, address)


def _not_of_family(found: Findings, decl: Declarations, key: int, port: Port, why: str) -> None:
    declared = decl.get("ADDRESS_FAMILY", key)
    if declared is not None:
        found.problem(declared.source, declared.value, f"{why}; port skipped")
    found.skip(port.key, why)


def _container_network(
    view: NetworkView,
    port: Port,
    *,
    key: int,
    decl: Declarations,
    policy: Policy,
    found: Findings,
) -> NetworkAddress | None:
    """The container's addresses on the network SERVICE_NETWORK or --network names.

    Without either, a container on several networks gets the first by name, and a line saying
    so: compose projects put containers on several networks all the time.
    """
    usable = {name: net for name, net in sorted(view.networks.items()) if net}
    declared = decl.get("NETWORK", key)
    if declared is not None and declared.value:
        if declared.value in usable:
            return usable[declared.value]
        on = ", ".join(usable) or "none"
        found.problem(
            declared.source, declared.value, f"no address on this network (on: {on}); port skipped"
        )
        found.skip(port.key, f"not on network {declared.value}")
        return None
    if policy.network in usable:
        return usable[policy.network]
    if not usable:
        _unreachable(view, port, found)
        return None
    chosen = next(iter(usable))
    if len(usable) > 1:
        found.problem(
            "SERVICE_NETWORK",
            "",
            f"on several networks ({', '.join(usable)}): registered the address on {chosen}, "
            "the first by name; set SERVICE_NETWORK or --network to choose",
        )
    return usable[chosen]


def _unreachable(view: NetworkView, port: Port, found: Findings) -> None:
    """No address to register; for a Swarm task, a line that says why (it was meant to run)."""
    if not view.task:
        found.skip(port.key, f"no container address (network mode {view.mode})")
        return
    if view.ingress:
        on = f"on no network but the routing mesh ({', '.join(view.ingress)})"
    else:
        on = f"without an address on any network (network mode {view.mode})"
    reason = (
        f"a Swarm task {on}: attach its service to an overlay network (--network) or publish "
        "the port with mode=host; not registered"
    )
    found.problem("network", ", ".join(view.ingress) or view.mode, reason)
    found.skip(port.key, f"a Swarm task {on}")
