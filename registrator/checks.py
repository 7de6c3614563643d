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
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from registrator.declarations import Declarations, Declared
from registrator.model import Check, CheckValue, Container, Port, Problem, Service

DEFAULT_INTERVAL = "10s"
#: TTL (seconds) of the checks registrator drives when `--ttl` is not given: long enough to
#: ride out a restart or an upgrade of registrator, short enough that a host where it stopped
#: shows up in Consul instead of reporting stale health forever.
DEFAULT_DRIVEN_TTL = 600
STATUSES = ("passing", "warning", "critical")
_DURATION = re.compile(r"^(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
_FLAGS = {"true": True, "yes": True, "on": True, "1": True}
_FLAGS.update({"false": False, "no": False, "off": False, "0": False})
_METHOD = re.compile(r"^[A-Za-z]{1,20}$")
_GRPC_SERVICE = re.compile(r"^[A-Za-z0-9_.-]+$")
_HEALTH_STATUS = {"healthy": "passing", "unhealthy": "critical"}
_MODIFIERS = frozenset(
    {"INTERVAL", "TIMEOUT", "INITIAL_STATUS", "DEREGISTER_AFTER", "HTTP_METHOD", "HEADER"}
    | {"TLS_SKIP_VERIFY", "GRPC_USE_TLS", "DOCKER_HEALTH"}
)
_PROBING = ("HTTP", "HTTPS", "TCP", "GRPC", "SCRIPT", "DOCKER")
_MIRROR = (":docker-health", "Docker HEALTHCHECK")
_DURATION_HINT = "not a duration in Consul's syntax (500ms, 10s, 1m30s)"

Definition = dict[str, CheckValue]


@dataclass(frozen=True, slots=True)
class CheckPolicy:
    """The options that shape checks: `--enable-script-checks`, `--docker-health`, `--ttl`."""

    enable_script_checks: bool = False
    docker_health: bool = True
    ttl: int = 0
    ttl_refresh: int = 0

    @property
    def driven_ttl(self) -> int:
        """TTL, in seconds, of every check whose status registrator sets."""
        return self.ttl or DEFAULT_DRIVEN_TTL

    @property
    def refresh_interval(self) -> float:
        """Seconds between re-assertions of those checks, well within their TTL."""
        return float(self.ttl_refresh) or self.driven_ttl / 3


class _Invalid(Exception):
    """A declaration the check it belongs to cannot be built from."""

    def __init__(self, declared: Declared, reason: str) -> None:
        super().__init__(reason)
        self.declared = declared
        self.reason = reason


class _Refused(_Invalid):
    """A declaration honoured only with an opt-in the operator did not give."""


class _NotHere(Exception):
    """A declaration meant for another port of the container (its TCP twin of a UDP port)."""


@dataclass(frozen=True, slots=True)
class _Context:
    service: Service
    container: Container
    port: Port
    decl: Declarations
    policy: CheckPolicy

    @property
    def keys(self) -> dict[str, Declared]:
        return self.decl.keys(self.port.port)

    def get(self, key: str) -> Declared | None:
        """The `CHECK_<key>` declaration that applies to this port, if any."""
        declared = self.decl.get(f"CHECK_{key}", self.port.port)
        return declared if declared is not None and declared.value.strip() else None

    def reaches_a_tcp_port(self, declared: Declared, key: str) -> bool:
        """Whether `declared` also applies to one of the container's TCP ports."""
        return any(
            p.protocol == "tcp" and self.decl.get(f"CHECK_{key}", p.port) == declared
            for p in self.container.ports
        )


@dataclass(frozen=True, slots=True)
class _Kind:
    """A check kind a container can declare: `SERVICE_CHECK_<key>`."""

    key: str
    suffix: str  # appended to `service:<service-id>` for the check ID
    consul_type: str
    label: str
    build: Callable[[_Context, Declared], Definition | None]


def service_checks(
    service: Service,
    *,
    container: Container,
    port: Port,
    decl: Declarations,
    policy: CheckPolicy,
) -> tuple[tuple[Check, ...], tuple[Problem, ...]]:
    """The checks `service` (from container port `port`) should have, and what was wrong.

    Check addresses are the service's address and port. An HTTP, TCP or gRPC declaration that
    also reaches a TCP port of the container (`SERVICE_CHECK_TCP` on 53/tcp and 53/udp) is left
    off the UDP one; only one that reaches no TCP port is a mistake.
    """
    ctx = _Context(service, container, port, decl, policy)
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
    ctx: _Context,
    slot: tuple[str, str],
    checks: list[Check],
    problems: list[Problem],
    build: Callable[[], Check | None],
) -> None:
    """Append what `build` makes; an invalid declaration appends a critical stand-in instead."""
    try:
        check = build()
    except _NotHere:
        return
    except _Refused as e:
        problems.append(_problem(ctx, e, "registered without this check"))
        return
    except _Invalid as e:
        problems.append(_problem(ctx, e, "its check is held critical until fixed"))
        check = _stand_in(ctx, slot, e)
    if check is not None:
        checks.append(check)


def _problem(ctx: _Context, error: _Invalid, consequence: str) -> Problem:
    declared = error.declared
    return Problem(ctx.container.name, declared.source, declared.value, f"{error}; {consequence}")


def _declared(ctx: _Context, kind: _Kind) -> Check | None:
    declared = ctx.get(kind.key)
    assert declared is not None
    definition = kind.build(ctx, declared)
    if definition is None:
        return None
    definition.update(_common(ctx))
    about = f"declared by {declared.source}"
    return _check(ctx, kind.suffix, kind.label, kind.consul_type, definition, about=about)


def _check(
    ctx: _Context,
    suffix: str,
    label: str,
    consul_type: str,
    definition: Definition,
    *,
    about: str,
    status: str | None = None,
    output: str = "",
) -> Check:
    name = f"{ctx.service.name} {label}"
    pairs = tuple(sorted(definition.items()))
    digest = hashlib.sha256(json.dumps([consul_type, name, pairs]).encode()).hexdigest()[:12]
    return Check(
        id=f"service:{ctx.service.id}{suffix}",
        name=name,
        kind=consul_type,
        definition=pairs,
        notes=f"{about}; registrator definition {digest}",
        status=status,
        output=output,
    )


def _driven(ctx: _Context, slot: tuple[str, str], *, status: str, output: str, about: str) -> Check:
    """A TTL check whose status registrator sets and re-asserts within its TTL."""
    definition: Definition = {"TTL": f"{ctx.policy.driven_ttl}s"}
    suffix, label = slot
    return _check(ctx, suffix, label, "ttl", definition, about=about, status=status, output=output)


def _stand_in(ctx: _Context, slot: tuple[str, str], error: _Invalid) -> Check:
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


def _mirror(ctx: _Context) -> Check | None:
    """Docker's HEALTHCHECK as a check: `starting` is the declared initial status or critical."""
    health = ctx.container.health
    if health is None or not ctx.policy.docker_health:
        return None
    toggle = ctx.get("DOCKER_HEALTH")
    if toggle is not None and not _flag(toggle):
        return None
    status = _HEALTH_STATUS.get(health.status) or _initial_status(ctx) or "critical"
    return _driven(
        ctx,
        _MIRROR,
        status=status,
        output=health.output or f"Docker health: {health.status}",
        about="mirrors the container's Docker HEALTHCHECK",
    )


def _registrator_ttl(ctx: _Context) -> Check:
    return _check(
        ctx,
        ":registrator",
        "registrator TTL",
        "ttl",
        {"TTL": f"{ctx.policy.ttl}s"},
        about="kept passing by registrator while the container runs (--ttl)",
        status="passing",
        output="registrator sees the container running",
    )


def _unknown_keys(ctx: _Context) -> list[Problem]:
    known = {kind.key for kind in KINDS} | _MODIFIERS
    return [
        Problem(ctx.container.name, d.source, d.value, "unknown check key; ignored")
        for key, d in sorted(ctx.keys.items())
        if key.startswith("CHECK_") and key[len("CHECK_") :] not in known
    ]


# -- the kinds ------------------------------------------------------------------------------


def _http(ctx: _Context, declared: Declared) -> Definition:
    return _http_like(ctx, declared, scheme="http")


def _https(ctx: _Context, declared: Declared) -> Definition:
    definition = _http_like(ctx, declared, scheme="https")
    skip = ctx.get("TLS_SKIP_VERIFY")
    if skip is not None and _flag(skip):
        definition["TLSSkipVerify"] = True
    return definition


def _http_like(ctx: _Context, declared: Declared, *, scheme: str) -> Definition:
    path = declared.value.strip()
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise _Invalid(declared, "an HTTP check takes a path starting with /")
    _needs_tcp(ctx, declared, scheme.upper(), key=scheme.upper())
    definition: Definition = {"HTTP": f"{scheme}://{_host_port(ctx.service)}{path}"}
    definition.update(_probing(ctx))
    method = ctx.get("HTTP_METHOD")
    if method is not None:
        if not _METHOD.match(method.value.strip()):
            raise _Invalid(method, "not an HTTP method")
        definition["Method"] = method.value.strip().upper()
    header = ctx.get("HEADER")
    if header is not None:
        definition["Header"] = _header(header)
    return definition


def _tcp(ctx: _Context, declared: Declared) -> Definition | None:
    if not _flag(declared):
        return None
    _needs_tcp(ctx, declared, "TCP", key="TCP")
    return {"TCP": _host_port(ctx.service), **_probing(ctx)}


def _grpc(ctx: _Context, declared: Declared) -> Definition | None:
    """`true` probes the server's overall health; any other name, that gRPC service's."""
    value = declared.value.strip()
    if value.lower() in _FLAGS and not _flag(declared):
        return None
    target = _host_port(ctx.service)
    if value.lower() not in _FLAGS:
        if not _GRPC_SERVICE.match(value):
            raise _Invalid(declared, "neither true/false nor a gRPC service name")
        target = f"{target}/{value}"
    _needs_tcp(ctx, declared, "gRPC", key="GRPC")
    definition: Definition = {"GRPC": target, **_probing(ctx)}
    use_tls = ctx.get("GRPC_USE_TLS")
    if use_tls is not None and _flag(use_tls):
        definition["GRPCUseTLS"] = True
        skip = ctx.get("TLS_SKIP_VERIFY")
        if skip is not None and _flag(skip):
            definition["TLSSkipVerify"] = True
    return definition


def _ttl(ctx: _Context, declared: Declared) -> Definition:
    interval = ctx.get("INTERVAL")
    if interval is not None and not any(ctx.get(key) for key in _PROBING):
        raise _Invalid(interval, "a TTL check has no interval (the application reports in)")
    return {"TTL": _duration(declared)}


def _script(ctx: _Context, declared: Declared) -> Definition | None:
    if not ctx.policy.enable_script_checks:
        raise _Refused(
            declared,
            "script checks run commands on the Consul agent's host and are off unless "
            "registrator runs with --enable-script-checks",
        )
    args = _command(ctx, declared)
    return {"Args": args, **_probing(ctx)} if args else None


def _docker(ctx: _Context, declared: Declared) -> Definition | None:
    """Consul's docker check: the agent runs the command in the container (`docker exec`)."""
    if not ctx.policy.enable_script_checks:
        raise _Refused(
            declared,
            "Consul runs docker checks only where script checks are enabled; start "
            "registrator with --enable-script-checks to allow them",
        )
    args = _command(ctx, declared)
    if not args:
        return None
    return {"DockerContainerID": ctx.container.id, "Args": args, **_probing(ctx)}


KINDS: tuple[_Kind, ...] = (
    _Kind("HTTP", ":http", "http", "HTTP", _http),
    _Kind("HTTPS", ":https", "http", "HTTPS", _https),
    _Kind("TCP", ":tcp", "tcp", "TCP", _tcp),
    _Kind("GRPC", ":grpc", "grpc", "gRPC", _grpc),
    # gliderlabs' ID (`service:<service-id>`), which applications passing their TTL already use
    _Kind("TTL", "", "ttl", "TTL", _ttl),
    _Kind("SCRIPT", ":script", "script", "script", _script),
    _Kind("DOCKER", ":docker", "docker", "docker exec", _docker),
)


# -- values ---------------------------------------------------------------------------------


def _common(ctx: _Context) -> Definition:
    """What every declared check carries: initial status and deregistration delay."""
    definition: Definition = {}
    status = _initial_status(ctx)
    if status:
        definition["Status"] = status
    after = ctx.get("DEREGISTER_AFTER")
    if after is not None:
        definition["DeregisterCriticalServiceAfter"] = _duration(after)
    return definition


def _probing(ctx: _Context) -> Definition:
    """Interval and timeout of a check Consul runs itself."""
    interval = ctx.get("INTERVAL")
    definition: Definition = {"Interval": _duration(interval) if interval else DEFAULT_INTERVAL}
    timeout = ctx.get("TIMEOUT")
    if timeout is not None:
        definition["Timeout"] = _duration(timeout)
    return definition


def _initial_status(ctx: _Context) -> str:
    declared = ctx.get("INITIAL_STATUS")
    if declared is None:
        return ""
    status = declared.value.strip().lower()
    if status not in STATUSES:
        raise _Invalid(declared, "not a check status (passing, warning, critical)")
    return status


def _duration(declared: Declared) -> str:
    value = declared.value.strip()
    if not _DURATION.match(value) or not re.search(r"[1-9]", value):
        raise _Invalid(declared, _DURATION_HINT)
    return value


def _flag(declared: Declared) -> bool:
    value = declared.value.strip().lower()
    if value not in _FLAGS:
        raise _Invalid(declared, "not true or false")
    return _FLAGS[value]


def _header(declared: Declared) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`{"X-Token": "abc", "Accept": ["a", "b"]}` -> sorted (name, values) pairs."""
    try:
        raw = json.loads(declared.value)
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or not raw:
        raise _Invalid(declared, 'not a JSON object of header names to values ({"X-A": "b"})')
    header = []
    for name, value in raw.items():
        values = [value] if isinstance(value, str) else value
        if not name or not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _Invalid(declared, f"header {name!r}: values must be strings")
        header.append((str(name), tuple(values)))
    return tuple(sorted(header))


def _command(ctx: _Context, declared: Declared) -> tuple[str, ...]:
    """Split like a shell would; `$SERVICE_IP` and `$SERVICE_PORT` replaced in each argument."""
    try:
        args = shlex.split(declared.value)
    except ValueError as e:
        raise _Invalid(declared, f"not a command line ({e})") from e
    values = {"SERVICE_IP": ctx.service.address, "SERVICE_PORT": str(ctx.service.port)}
    return tuple(_substitute(arg, values) for arg in args)


def _substitute(arg: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        arg = arg.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return arg


def _needs_tcp(ctx: _Context, declared: Declared, what: str, *, key: str) -> None:
    if ctx.port.protocol == "tcp":
        return
    if ctx.reaches_a_tcp_port(declared, key):
        raise _NotHere
    raise _Invalid(declared, f"a {what} check cannot probe a {ctx.port.protocol} port")


def _host_port(service: Service) -> str:
    host = f"[{service.address}]" if ":" in service.address else service.address
    return f"{host}:{service.port}"
