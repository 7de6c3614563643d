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
networks and published ports are the ones that count.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from registrator.core.declarations import Declarations
from registrator.core.model import Binding, Container, Port
from registrator.core.policy import Findings, Policy

_UNSPECIFIED = frozenset({"", "0.0.0.0", "::"})
_MAX_PREFIX = 128


@dataclass(frozen=True, slots=True)
class NetworkView:
    """The network a container's ports live in: its own, or its peer's (`container:<id>`)."""

    mode: str
    #: network name -> address, as `Container.networks`
    networks: Mapping[str, str]
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
) -> Endpoint | None:
    """Where `port` is registered, or None (with the reason in `found`) when nowhere."""
    where = _port_and_address(port, view=view, policy=policy, found=found)
    if where is None:
        return None
    number, address = where
    labelled = _label_address(container, policy.use_ip_from_label, found)
    if labelled:
        return Endpoint(labelled, number)
    if address is None:
        address = _container_address(view, port, decl=decl, policy=policy, found=found)
    return None if address is None else Endpoint(address, number)


def _port_and_address(
    port: Port, *, view: NetworkView, policy: Policy, found: Findings
) -> tuple[int, str | None] | None:
    """The registered port and address; address None means "the container's own address"."""
    host_address = policy.host_ip or policy.advertise_address
    if view.mode == "host":
        return port.port, host_address
    if policy.internal:
        return port.port, None
    bindings = view.bindings.get(port.key, ())
    if not bindings and view.task:
        return port.port, None
    if not bindings:
        found.skip(port.key, "exposed but not published")
        return None
    binding = pick_binding(bindings)
    specific = binding.host_ip not in _UNSPECIFIED
    return binding.host_port, binding.host_ip if specific else host_address


def pick_binding(bindings: tuple[Binding, ...]) -> Binding:
    """One binding per port however many Docker reports: IPv4 first, lowest host port."""
    return min(bindings, key=lambda b: (":" in b.host_ip, b.host_port, b.host_ip))


def _container_address(
    view: NetworkView, port: Port, *, decl: Declarations, policy: Policy, found: Findings
) -> str | None:
    """The container's address on the network SERVICE_NETWORK or --network names.

    Without either, a container on several networks gets the first by name, and a line saying
    so: compose projects put containers on several networks all the time.
    """
    usable = {name: ip for name, ip in sorted(view.networks.items()) if ip}
    declared = decl.get("NETWORK", port.port)
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


def _label_address(container: Container, label: str, found: Findings) -> str:
    """-useIpFromLabel: the label's address, or "" (and a problem) when it has none."""
    if not label:
        return ""
    raw = container.labels.get(label)
    if raw is None:
        found.problem(label, "", "label missing (-useIpFromLabel): the usual address is used")
        return ""
    address = address_from_label(raw)
    if address is None:
        reason = "not an IP address (a /NN suffix is allowed): the usual address is used"
        found.problem(label, raw, reason)
    return address or ""


def address_from_label(value: str) -> str | None:
    """`10.1.2.3/24` -> `10.1.2.3`; None when `value` is not an address with an optional /NN."""
    text, slash, prefix = value.strip().partition("/")
    if slash and not (prefix.isascii() and prefix.isdigit() and int(prefix) <= _MAX_PREFIX):
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
