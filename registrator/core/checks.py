"""The health checks a service should have. Pure: no Docker, no Consul, no logging here.

Three sources, each check with a stable, readable ID under `service:<service-id>`:
- the container's `SERVICE_CHECK_*` declarations (and the per-port `SERVICE_<port>_CHECK_*`):
  every kind declared becomes its own check (gliderlabs builds one, the first it finds);
- Docker's own HEALTHCHECK, mirrored as a TTL check whose status registrator sets;
- `--ttl`: a TTL check on every service that registrator keeps passing while it runs.

A declaration that cannot be honoured never yields a half-configured check, and never leaves a
service looking healthier than declared: the check it meant is replaced by a TTL check held
critical whose output names the key and the value, and a `Problem` is reported. A script check
without `--enable-script-checks` is different: that refusal is the host operator's policy, not
a broken container, so the service registers without it.

Consul 1.8 lists checks back without their definition, so each check's Notes ends with a
digest of its definition: a check edited by hand no longer matches the desired one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial

from registrator.core.check_kinds import KINDS, MODIFIERS, Kind
from registrator.core.check_values import (
    Context,
    Definition,
    Invalid,
    NotHere,
    Probe,
    Refused,
    common,
    flag,
    initial_status,
)
from registrator.core.declarations import Declarations
from registrator.core.model import Check, Container, Port, Problem, Service
from registrator.core.policy import CheckPolicy

_HEALTH_STATUS = {"healthy": "passing", "unhealthy": "critical"}
_MIRROR = (":docker-health", "Docker HEALTHCHECK")


def service_checks(
    service: Service,
    *,
    container: Container,
    port: Port,
    decl: Declarations,
    policy: CheckPolicy,
    probe: Probe | None = None,
) -> tuple[tuple[Check, ...], tuple[Problem, ...]]:
    """The checks `service` (from container port `port`) should have, and what was wrong.

    HTTP, TCP and gRPC checks connect to the service's address and port, or to `probe`'s
    (`SERVICE_CHECK_PORT`). An HTTP, TCP or gRPC declaration that also reaches a TCP port of the
    container (`SERVICE_CHECK_TCP` on 53/tcp and 53/udp) is left off the UDP one; only one that
    reaches no TCP port is a mistake.
    """
    ctx = Context(service, container, port, decl, policy, probe)
    checks: list[Check] = []
    problems: list[Problem] = []
    for kind in KINDS:
        declared = ctx.get(kind.key)
        if declared is not None:
            _build(ctx, (kind.suffix, kind.label), checks, problems, partial(_declared, ctx, kind))
    _build(ctx, _MIRROR, checks, problems, partial(_mirror, ctx))
    if policy.ttl:
        checks.append(_registrator_ttl(ctx))
    problems.extend(_unknown_keys(ctx))
    unique = tuple(dict.fromkeys(problems))
    return tuple(sorted(checks, key=lambda c: c.id)), unique


def _build(
    ctx: Context,
    slot: tuple[str, str],
    checks: list[Check],
    problems: list[Problem],
    build: Callable[[], Check | None],
) -> None:
    """Append what `build` makes; an invalid declaration appends a critical stand-in instead."""
    try:
        check = build()
    except NotHere:
        return
    except Refused as e:
        problems.append(_problem(ctx, e, "registered without this check"))
        return
    except Invalid as e:
        problems.append(_problem(ctx, e, "its check is held critical until fixed"))
        check = _stand_in(ctx, slot, e)
    if check is not None:
        checks.append(check)


def _problem(ctx: Context, error: Invalid, consequence: str) -> Problem:
    declared = error.declared
    return Problem(ctx.container.name, declared.source, declared.value, f"{error}; {consequence}")


def _declared(ctx: Context, kind: Kind) -> Check | None:
    declared = ctx.get(kind.key)
    assert declared is not None
    definition = kind.build(ctx, declared)
    if definition is None:
        return None
    definition.update(common(ctx))
    about = f"declared by {declared.source}"
    return build_check(
        ctx.service, kind.suffix, kind.label, kind.consul_type, definition, about=about
    )


def build_check(
    service: Service,
    suffix: str,
    label: str,
    consul_type: str,
    definition: Definition,
    *,
    about: str,
    status: str | None = None,
    output: str = "",
) -> Check:
    name = f"{service.name} {label}"
    pairs = tuple(sorted(definition.items()))
    digest = hashlib.sha256(json.dumps([consul_type, name, pairs]).encode()).hexdigest()[:12]
    return Check(
        id=f"service:{service.id}{suffix}",
        name=name,
        kind=consul_type,
        definition=pairs,
        notes=f"{about}; registrator definition {digest}",
        status=status,
        output=output,
    )


def _driven(ctx: Context, slot: tuple[str, str], *, status: str, output: str, about: str) -> Check:
    """A TTL check whose status registrator sets and re-asserts within its TTL."""
    definition: Definition = {"TTL": f"{ctx.policy.driven_ttl}s"}
    suffix, label = slot
    return build_check(
        ctx.service, suffix, label, "ttl", definition, about=about, status=status, output=output
    )


def _stand_in(ctx: Context, slot: tuple[str, str], error: Invalid) -> Check:
    declared = error.declared
    output = f"{declared.source}={declared.value}: {error}; check not configured"
    suffix, label = slot
    return _driven(
        ctx,
        (suffix, f"{label} (invalid declaration)"),
        status="critical",
        output=output,
        about=f"stands in for the check {declared.source} could not configure",
    )


def _mirror(ctx: Context) -> Check | None:
    """Docker's HEALTHCHECK as a check: `starting` is the declared initial status or critical."""
    health = ctx.container.health
    if health is None or not ctx.policy.docker_health:
        return None
    toggle = ctx.get("DOCKER_HEALTH")
    if toggle is not None and not flag(toggle):
        return None
    status = _HEALTH_STATUS.get(health.status) or initial_status(ctx) or "critical"
    return _driven(
        ctx,
        _MIRROR,
        status=status,
        output=health.output or f"Docker health: {health.status}",
        about="mirrors the container's Docker HEALTHCHECK",
    )


def _registrator_ttl(ctx: Context) -> Check:
    return build_check(
        ctx.service,
        ":registrator",
        "registrator TTL",
        "ttl",
        {"TTL": f"{ctx.policy.ttl}s"},
        about="kept passing by registrator while the container runs (--ttl)",
        status="passing",
        output="registrator sees the container running",
    )


def _unknown_keys(ctx: Context) -> list[Problem]:
    known = {kind.key for kind in KINDS} | MODIFIERS
    return [
        Problem(ctx.container.name, d.source, d.value, "unknown check key; ignored")
        for key, d in sorted(ctx.keys.items())
        if key.startswith("CHECK_") and key[len("CHECK_") :] not in known
    ]


def refusal_stand_in(service: Service, message: str, *, ttl: int) -> Check:
    """A check held critical in place of what the registry refused, naming its reason."""
    return build_check(
        service,
        ":refused",
        "refused by the registry",
        "ttl",
        {"TTL": f"{ttl}s"},
        about="stands in for the part of the service the registry refused",
        status="critical",
        output=message,
    )
