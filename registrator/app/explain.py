"""`registrator explain CONTAINER`: why a container has (or lacks) the services it has.

The first thing a user needs when a container does not show up in Consul. It runs the daemon's
own derivation, under the same options, on one container and prints every service and check it
yields, each port or key left out and why, and whether Consul already holds each service.
Consul is optional here: when it does not answer, the report says so and the address for
published ports falls back to what the options alone decide. With a key-value registry
(`etcd://`, `consulkv://`, `skydns2://`) the same report compares with its keys instead.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from registrator.app.settings import Settings
from registrator.core.decide import decide
from registrator.core.drain import DRAINING, drain_for, lifted_after, signal_name
from registrator.core.errors import BackendError
from registrator.core.health import probes
from registrator.core.model import Check, Container, ContainerID, Derivation, Service, ServiceID
from registrator.core.plan import ClearMaintenance, Register, SetMaintenance, Stored, plan
from registrator.core.policy import Policy
from registrator.docker.engine import open_engine
from registrator.registries.consul.held import reported
from registrator.registries.open import Opened
from registrator.runtime.probes import explained

#: Seconds to wait for Docker or Consul: explain is interactive.
TIMEOUT = 5.0
#: What a user can do about the commonest reasons a port is skipped.
HINTS = {
    "exposed but not published": "publish it with -p, or run registrator with --internal",
    "not running": "registrator registers running containers only",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ConsulView:
    """What the local agent said, or why it said nothing."""

    address: str = ""
    owned: Mapping[ServiceID, Service] | None = None
    error: str = ""
    #: the registry's name in the report, and how it holds a service
    name: str = "Consul"
    stored: Stored = reported
    #: where its address for published ports comes from
    address_from: str = "the Consul agent's address"


def run(
    reference: str,
    *,
    settings: Settings,
    opened: Opened,
    policy_for: Callable[[Settings, str], Policy],
    out: TextIO = sys.stdout,
) -> int:
    """Explain the container named or identified by `reference`; 1 when it cannot be found."""
    try:
        container, engine_name, limitations = _inspect(reference)
    except BackendError as e:
        print(f"registrator: error: {e}", file=sys.stderr)
        return 1
    if container is None:
        print(f"registrator: error: no container {reference!r} (name or ID)", file=sys.stderr)
        return 1
    policy = policy_for(settings, settings.hostname or engine_name or socket.gethostname())
    if opened.own_node is not None:
        opened.own_node(policy.hostname, settings.ip)
    policy = dataclasses.replace(policy, connect=opened.kind == "consul")
    view = consul_view(opened, policy)
    if view.address and not policy.host_ip:
        policy = dataclasses.replace(policy, advertise_address=view.address)
    derivation = decide(container, policy)
    out.write(report(container, derivation, policy=policy, consul=view, limitations=limitations))
    if opened.agentless:
        out.write(probe_report(derivation.services))
    return 0


def probe_report(services: Sequence[Service]) -> str:
    """Catalog mode: each check registrator probes itself, probed once now (a TTL: its TTL)."""
    found = probes({s.id: s for s in services})
    lines = ["", f"probes run by registrator ({len(found)}):" if found else "probes: none"]
    for check, probe in sorted(found.items()):
        lines.append(f"  {check}: {explained(probe)}")
    return "\n".join(lines) + "\n"


def _inspect(reference: str) -> tuple[Container | None, str, Mapping[str, str]]:
    docker = open_engine(timeout=TIMEOUT)
    try:
        found = docker.inspect(ContainerID(reference))
        return found, docker.host_name(), docker.limitations()
    finally:
        docker.close()


def consul_view(opened: Opened, policy: Policy) -> ConsulView:
    """What the registry holds of this host's services (and its address for them)."""
    registry = opened.registry
    view = ConsulView(stored=registry.stored)
    if opened.keyed:
        name = {"consulkv": "Consul KV", "skydns2": "etcd (SkyDNS)"}.get(opened.kind, "etcd")
        from_ = f"the address this host reaches {name} from"
        view = dataclasses.replace(view, name=name, address_from=from_)
    try:
        address = "" if policy.host_ip else registry.advertise_address()
        owned = registry.services(owner=policy.hostname)
        return dataclasses.replace(view, address=address, owned=owned)
    except BackendError as e:
        return dataclasses.replace(view, error=str(e))
    finally:
        opened.close()


def report(
    container: Container,
    derivation: Derivation,
    *,
    policy: Policy,
    consul: ConsulView,
    limitations: Mapping[str, str] | None = None,
) -> str:
    """The whole explanation as text. Pure, so every line of it is unit-tested.

    `limitations` are the engine's (Podman's), by feature: a drain that cannot start replaces
    the drain line; the others follow it.
    """
    limits = dict(limitations or {})
    state = "running" if container.running else container.status
    lines = [
        f"container {container.name} ({container.id[:12]}), image {container.image}, {state}",
        *_swarm_lines(container),
        f"host identity {policy.hostname}; {_address_source(policy, consul)}",
        *_engine_lines(_drain_lines(container, derivation, policy), limits),
        "",
        f"services ({len(derivation.services)}):" if derivation.services else "services: none",
    ]
    for service in derivation.services:
        lines += _service_lines(service, consul)
    if derivation.adopt:
        lines += _kept_lines(derivation.adopt, consul)
    if derivation.skipped:
        lines += ["", "skipped:"]
        lines += [f"  {what}: {why}{_hint(why)}" for what, why in derivation.skipped]
    if derivation.connect_ignored:
        lines += ["", f"{derivation.connect_ignored}: ignored (Connect is for plain containers"]
        lines[-1] += " registered in a Consul agent)"
    if derivation.problems:
        lines += ["", "problems (each logged once as container.bad_declaration):"]
        lines += [f"  {p.key}={p.value}: {p.reason}" for p in derivation.problems]
    return "\n".join(lines) + "\n"


def _engine_lines(drain: list[str], limits: Mapping[str, str]) -> list[str]:
    """The drain lines, unless the engine cannot drain; then what else it cannot do."""
    if drain and "drain" in limits:
        drain = [f"on its stop signal: not drained: {limits['drain']}"]
    return [*drain, *(f"engine: {t}" for f, t in sorted(limits.items()) if f != "drain")]


def _swarm_lines(container: Container) -> list[str]:
    """A Swarm task: its service, slot and task, and whether the service's labels were read."""
    task = container.swarm
    if task is None:
        return []
    slot = f"slot {task.slot}" if task.slot else "no slot (a global service)"
    if task.service_labels is None:
        labels = "not read: only a Swarm manager can read them"
    else:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(task.service_labels.items())) or "none"
    return [
        f"swarm service {task.service_name} ({task.service_id[:12]}), {slot}, task {task.task_id}",
        f"swarm service labels: {labels}",
    ]


def _drain_lines(container: Container, derivation: Derivation, policy: Policy) -> list[str]:
    """What `docker stop` does to the services: explain cannot see a signal being sent."""
    if not derivation.services:
        return []
    drain = drain_for(container, policy)
    signal = f"on its stop signal ({signal_name(container.stop_signal)}, docker stop)"
    if drain.mode == "off":
        return [f"{signal}: not drained ({drain.source}); deregistered when it dies"]
    if drain.mode == "deregister":
        return [f"{signal}: deregistered at once ({drain.source})"]
    bound = lifted_after(container)
    return [f"{signal}: drained (maintenance) until it dies, {bound}s at most ({drain.source})"]


def _hint(why: str) -> str:
    for reason, hint in HINTS.items():
        if why.startswith(reason):
            return f" ({hint})"
    return ""


def _address_source(policy: Policy, consul: ConsulView) -> str:
    if policy.host_ip:
        return f"published ports are registered at {policy.host_ip} (--ip)"
    if policy.advertise_address:
        address = policy.advertise_address
        return f"published ports are registered at {address} ({consul.address_from})"
    who = "the Consul agent" if consul.name == "Consul" else consul.name
    return f"{who} did not answer ({consul.error}); addresses below may be empty"


def _service_lines(service: Service, consul: ConsulView) -> list[str]:
    lines = [
        f"  {service.id}",
        f"    name     {service.name}",
        f"    address  {_host_port(service.address, service.port)}",
    ]
    if service.tagged_addresses:
        tagged = (f"{t.key}={_host_port(t.address, t.port)}" for t in service.tagged_addresses)
        lines.append(f"    tagged   {', '.join(tagged)}")
    weights = service.weights
    lines.append(f"    weights  passing {weights.passing}, warning {weights.warning}")
    if service.tags:
        lines.append(f"    tags     {', '.join(service.tags)}")
    if service.enable_tag_override:
        lines.append("    tag override on: tags edited in the catalog are kept, never compared")
    lines.append(f"    meta     {', '.join(f'{k}={v}' for k, v in service.meta)}")
    lines += [f"    check    {_check(check)}" for check in service.checks]
    lines += _connect_lines(service)
    if service.maintenance:
        lines.append(f"    maintenance mode ({service.maintenance})")
    lines.append(f"    in {consul.name}: {_in_consul(service, consul)}")
    return lines


def _connect_lines(service: Service) -> list[str]:
    """Consul Connect: native, or the sidecar proxy the agent registers beside the service."""
    connect = service.connect
    if connect is None:
        return []
    if connect.native:
        return ["    connect  native (the app speaks Connect's mTLS itself)"]
    port = connect.port or "one from the agent's sidecar range"
    where = connect.address or "the service's address"
    local = _host_port(connect.local_address, connect.local_port)
    lines = [
        f"    sidecar  {service.sidecar_id}, at {where}, port {port}; reaches the app at {local}",
    ]
    for u in connect.upstreams:
        dc = f" in {u.datacenter}" if u.datacenter else ""
        lines.append(
            f"    upstream {u.destination}{dc} on {_host_port(u.bind_address, u.bind_port)}"
        )
    checks = [f"    sidecar check {_check(c)}" for c in connect.checks]
    return lines + (checks or ["    sidecar checks: Consul's own (TCP on the proxy, alias)"])


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _check(check: Check) -> str:
    return f"{check.name}: " + " ".join(f"{k}={v}" for k, v in check.definition)


def _in_consul(service: Service, consul: ConsulView) -> str:
    """What the daemon's plan does with `service`, against what the agent holds now."""
    if consul.owned is None:
        return f"unknown ({consul.name} did not answer)"
    if consul.stored(service) is None:
        held = "removed on the next pass" if service.id in consul.owned else "not registered"
        return f"{held}: unhealthy, paused or draining (--kv-health)"
    if service.id not in consul.owned:
        return "not registered (registrator registers it on its next pass over this container)"
    if consul.owned[service.id].maintenance == DRAINING:
        return "registered, draining (its stop signal was sent; deregistered when it dies)"
    todo = plan({service.id: service}, consul.owned, scope={service.id}, stored=consul.stored)
    if todo.of(Register):
        return "registered, differs (will be updated)"
    if todo.of(SetMaintenance):
        return f"registered, will be put in maintenance ({service.maintenance})"
    if todo.of(ClearMaintenance):
        return "registered, will be taken out of maintenance"
    return "registered, up to date"


def _kept_lines(prefix: str, consul: ConsulView) -> list[str]:
    """A kept container first seen after it exited keeps what the agent holds for it."""
    if consul.owned is None:
        return [f"  services {prefix}*: kept as registered ({consul.name} did not answer)"]
    kept = sorted(i for i in consul.owned if i.startswith(prefix))
    return [f"  {i}: kept as registered" for i in kept] or [f"  {prefix}*: none registered"]
