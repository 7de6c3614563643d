"""Consul Connect from a container's declarations: a native app, or one behind a sidecar. Pure.

- `SERVICE_CONNECT=sidecar|native` (per port too; `false` keeps the port out of the mesh):
  `sidecar` registers the service with a sidecar proxy, which the agent adds beside it as
  `<id>-sidecar-proxy`; `native`, an app that speaks Connect's mTLS itself.
- `SERVICE_CONNECT_UPSTREAMS=[dc:]name:[addr:]port,...`: what the proxy makes reachable on a
  local port (`upstreams`); it implies `sidecar`. Connect proxies TCP: a UDP port stays out.
- `SERVICE_CONNECT_PORT=N`: the proxy's port, instead of one from the agent's sidecar range;
  `SERVICE_CONNECT_ADDRESS=A` (which needs the port): where the proxy listens when that is not
  where the app is reached (a proxy container of its own, or on the host for an `--internal`
  app). The proxy then binds there, and its checks probe it there.
- `SERVICE_CONNECT_CHECK_*`: the proxy's own checks, read as `SERVICE_CHECK_*` are.

The proxy reaches the app where registrator registers it (the published host port, or with
`--internal` the container's address). Without a declared port or checks, the proxy's checks
are Consul's own: a TCP check on the proxy's port at that address, and an alias of the service.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from registrator.core.check_values import Probe
from registrator.core.checks import build_check, service_checks
from registrator.core.declarations import Declarations, Declared, port_number
from registrator.core.flags import parse_flag
from registrator.core.model import (
    SIDECAR_SUFFIX,
    Check,
    Connect,
    Container,
    Port,
    Service,
    ServiceID,
)
from registrator.core.policy import CheckPolicy, Findings, Policy
from registrator.core.upstreams import upstreams

KEYS = frozenset({"CONNECT", "CONNECT_UPSTREAMS", "CONNECT_ADDRESS", "CONNECT_PORT"})
CHECK_PREFIX = "CONNECT_CHECK_"
_UNKNOWN_PORT = Declared("SERVICE_CONNECT_PORT", "(not declared)")
_PROBES = ("HTTP", "HTTPS", "TCP", "GRPC")


def is_connect_key(key: str) -> bool:
    """A key (without `SERVICE_`) this module reads: never service Meta."""
    return key in KEYS or key.startswith(CHECK_PREFIX)


def asked(decl: Declarations, port: int) -> Declared | None:
    """The first Connect key with a value that applies to `port`, if any."""
    keys = decl.keys(port)
    found = (keys[k] for k in sorted(keys) if is_connect_key(k) and keys[k].value.strip())
    return next(found, None)


def with_connect(
    service: Service,
    *,
    container: Container,
    port: Port,
    decl: Declarations,
    policy: Policy,
    found: Findings,
) -> Service:
    """`service` with what its declarations ask of Connect; unchanged when they ask nothing."""
    mode = _mode(decl, port.port, found)
    if mode is None:
        return service
    if port.protocol != "tcp":
        if not any(p.protocol == "tcp" for p in container.ports):
            reason = f"Connect proxies TCP; port {port.key} is registered without it"
            found.problem("SERVICE_CONNECT", mode, reason)
        return service
    if mode == "native":
        _not_for_native(decl, port.port, found)
        return dataclasses.replace(service, connect=Connect(native=True))
    sidecar = Connect(
        upstreams=upstreams(decl.get("CONNECT_UPSTREAMS", port.port), found),
        local_address=service.address,
        local_port=service.port,
    )
    sidecar = _listening(sidecar, service, decl.get("CONNECT_ADDRESS", port.port), found)
    sidecar = _port(sidecar, decl.get("CONNECT_PORT", port.port), found)
    checks = _checks(
        service,
        sidecar,
        container=container,
        port=port,
        decl=decl,
        policy=policy.checks,
        found=found,
    )
    return dataclasses.replace(service, connect=dataclasses.replace(sidecar, checks=checks))


def in_mesh(
    service: Service,
    container: Container,
    port: Port,
    *,
    decl: Declarations,
    policy: Policy,
    found: Findings,
) -> Service:
    """The service with what it asks of Consul Connect, where Connect can be honoured: not
    for a Swarm task (its proxy would not follow the task), nor in a registry of keys."""
    if container.swarm is None and policy.connect:
        return with_connect(
            service, container=container, port=port, decl=decl, policy=policy, found=found
        )
    declared = asked(decl, port.port)
    if declared is not None and not found.connect_ignored:
        found.connect_ignored = declared.source
    return service


def _mode(decl: Declarations, port: int, found: Findings) -> str | None:
    declared = decl.get("CONNECT", port)
    value = "" if declared is None else declared.value.strip().lower()
    if not value:
        wanted = decl.get("CONNECT_UPSTREAMS", port)
        return "sidecar" if wanted is not None and wanted.value.strip() else None
    if value in ("sidecar", "native"):
        return value
    flag = parse_flag(value)
    if flag is None:
        assert declared is not None
        found.problem(declared.source, declared.value, "not sidecar or native; left out")
    return "sidecar" if flag else None


def _not_for_native(decl: Declarations, port: int, found: Findings) -> None:
    for key, declared in sorted(decl.keys(port).items()):
        if is_connect_key(key) and key != "CONNECT" and declared.value.strip():
            reason = "a native app has no sidecar proxy (SERVICE_CONNECT=native); ignored"
            found.problem(declared.source, declared.value, reason)


def _listening(
    sidecar: Connect, service: Service, declared: Declared | None, found: Findings
) -> Connect:
    if declared is None or not declared.value.strip():
        return sidecar
    value = declared.value.strip()
    try:
        address = str(ipaddress.ip_address(value))
    except ValueError:
        found.problem(declared.source, declared.value, "not an IP address; ignored")
        return sidecar
    # the agent reports a sidecar at its service's address as at that address: not a change
    return dataclasses.replace(sidecar, address="" if address == service.address else address)


def _port(sidecar: Connect, declared: Declared | None, found: Findings) -> Connect:
    if declared is not None and declared.value.strip():
        number = port_number(declared.value)
        if number is not None:
            return dataclasses.replace(sidecar, port=number)
        found.problem(declared.source, declared.value, "not a port; the agent picks one")
    if sidecar.address:
        reason = "needs SERVICE_CONNECT_PORT (the proxy's checks must know its port); ignored"
        found.problem("SERVICE_CONNECT_ADDRESS", sidecar.address, reason)
        return dataclasses.replace(sidecar, address="")
    return sidecar


def _checks(
    service: Service,
    sidecar: Connect,
    *,
    container: Container,
    port: Port,
    decl: Declarations,
    policy: CheckPolicy,
    found: Findings,
) -> tuple[Check, ...]:
    """The proxy's checks: declared, or a TCP check where it listens when its port is known;
    () leaves Consul's own. Registrator's always come with an alias of the service."""
    proxy = proxy_service(service, sidecar)
    declared = _as_check_keys(decl)
    if not any(k.startswith("CHECK_") for k in declared.keys(port.port)):
        if not sidecar.port:
            return ()
        declared.generic["CHECK_TCP"] = Declared("SERVICE_CONNECT_PORT", "true")
    probe = None if sidecar.port else Probe(_UNKNOWN_PORT, reason=_no_port(declared, port))
    only_consul = CheckPolicy(enable_script_checks=policy.enable_script_checks, docker_health=False)
    checks, problems = service_checks(
        proxy, container=container, port=port, decl=declared, policy=only_consul, probe=probe
    )
    for problem in problems:
        found.problem(problem.key, problem.value, problem.reason)
    alias = build_check(
        proxy,
        ":alias",
        "alias",
        "alias",
        {"AliasService": service.id},
        about="healthy as long as the service it proxies is",
    )
    return (*checks, alias)


def _no_port(decl: Declarations, port: Port) -> str:
    probing = [k for k in _PROBES if decl.get(f"CHECK_{k}", port.port) is not None]
    return f"the proxy's port is the agent's choice, so no {'/'.join(probing)} check can find it"


def proxy_service(service: Service, sidecar: Connect) -> Service:
    """The sidecar proxy as a service of its own, for naming and aiming its checks."""
    return Service(
        id=ServiceID(f"{service.id}{SIDECAR_SUFFIX}"),
        name=f"{service.name}{SIDECAR_SUFFIX}",
        address=sidecar.address or sidecar.local_address,
        port=sidecar.port,
    )


def _as_check_keys(decl: Declarations) -> Declarations:
    """The `CONNECT_CHECK_*` declarations as the `CHECK_*` keys `checks.py` reads."""

    def renamed(keys: dict[str, Declared]) -> dict[str, Declared]:
        cut = len("CONNECT_")
        return {k[cut:]: d for k, d in keys.items() if k.startswith(CHECK_PREFIX)}

    per_port = {number: renamed(keys) for number, keys in decl.per_port.items()}
    return Declarations(generic=renamed(decl.generic), per_port=per_port)
