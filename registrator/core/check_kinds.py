"""How each `SERVICE_CHECK_<kind>` declaration becomes a Consul check definition. Pure.

Each kind reads its own value here; the values every kind shares (durations, statuses,
thresholds, where a check connects) are read and judged in `check_values`. A value that cannot
be honoured raises `Invalid`, naming the declaration, and `checks.py` decides what takes the
check's place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from registrator.core.check_values import (
    THRESHOLDS,
    Context,
    Definition,
    Invalid,
    NotHere,
    Refused,
    command,
    duration,
    flag,
    header,
    method,
    probing,
    probing_keys,
)
from registrator.core.declarations import Declared
from registrator.core.flags import parse_flag

_GRPC_SERVICE = re.compile(r"[A-Za-z0-9_.-]+")
MODIFIERS = frozenset(
    {"INTERVAL", "TIMEOUT", "INITIAL_STATUS", "DEREGISTER_AFTER", "HTTP_METHOD", "HEADER"}
    | {"TLS_SKIP_VERIFY", "GRPC_USE_TLS", "DOCKER_HEALTH", "PORT"}
    | set(THRESHOLDS)
)
_PROBING = ("HTTP", "HTTPS", "TCP", "GRPC", "SCRIPT", "DOCKER")


@dataclass(frozen=True, slots=True)
class Kind:
    """A check kind a container can declare: `SERVICE_CHECK_<key>`."""

    key: str
    suffix: str  # appended to `service:<service-id>` for the check ID
    consul_type: str
    label: str
    build: Callable[[Context, Declared], Definition | None]


def _http(ctx: Context, declared: Declared) -> Definition:
    return _http_like(ctx, declared, scheme="http")


def _https(ctx: Context, declared: Declared) -> Definition:
    definition = _http_like(ctx, declared, scheme="https")
    skip = ctx.get("TLS_SKIP_VERIFY")
    if skip is not None and flag(skip):
        definition["TLSSkipVerify"] = True
    return definition


def _http_like(ctx: Context, declared: Declared, *, scheme: str) -> Definition:
    path = declared.value.strip()
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise Invalid(declared, "an HTTP check takes a path starting with /")
    _needs_tcp(ctx, declared, scheme.upper(), key=scheme.upper())
    definition: Definition = {"HTTP": f"{scheme}://{ctx.target()}{path}"}
    definition.update(probing(ctx))
    declared_method = ctx.get("HTTP_METHOD")
    if declared_method is not None:
        definition["Method"] = method(declared_method)
    declared_header = ctx.get("HEADER")
    if declared_header is not None:
        definition["Header"] = header(declared_header)
    return definition


def _tcp(ctx: Context, declared: Declared) -> Definition | None:
    if not flag(declared):
        return None
    _needs_tcp(ctx, declared, "TCP", key="TCP")
    return {"TCP": ctx.target(), **probing(ctx)}


def _grpc(ctx: Context, declared: Declared) -> Definition | None:
    """`true` probes the server's overall health; any other name, that gRPC service's."""
    value = declared.value.strip()
    if parse_flag(value) is False:
        return None
    _agentless(ctx, declared, "gRPC")
    target = ctx.target()
    if parse_flag(value) is None:
        if not _GRPC_SERVICE.fullmatch(value):
            raise Invalid(declared, "neither true/false nor a gRPC service name")
        target = f"{target}/{value}"
    _needs_tcp(ctx, declared, "gRPC", key="GRPC")
    definition: Definition = {"GRPC": target, **probing(ctx)}
    use_tls = ctx.get("GRPC_USE_TLS")
    if use_tls is not None and flag(use_tls):
        definition["GRPCUseTLS"] = True
        skip = ctx.get("TLS_SKIP_VERIFY")
        if skip is not None and flag(skip):
            definition["TLSSkipVerify"] = True
    return definition


def _ttl(ctx: Context, declared: Declared) -> Definition:
    """A TTL check alone on a port: an interval or threshold declared there was meant for it."""
    if not any(ctx.get(key) for key in _PROBING):
        for meant in probing_keys(ctx):
            what = meant.source.upper().rpartition("CHECK_")[2].lower().replace("_", " ")
            raise Invalid(meant, f"a TTL check has no {what} (the application reports in)")
    return {"TTL": duration(declared)}


def _agentless(ctx: Context, declared: Declared, what: str) -> None:
    """In catalog mode no agent runs checks: registrator probes HTTP and TCP ones alone."""
    if ctx.policy.agentless:
        raise Refused(
            declared,
            f"catalog mode (consul-catalog://) has no Consul agent to run {what} checks; "
            "registrator itself probes only HTTP, HTTPS and TCP checks",
        )


def _script(ctx: Context, declared: Declared) -> Definition | None:
    _agentless(ctx, declared, "script")
    if not ctx.policy.enable_script_checks:
        raise Refused(
            declared,
            "script checks run commands on the Consul agent's host and are off unless "
            "registrator runs with --enable-script-checks",
        )
    args = command(ctx, declared)
    return {"Args": args, **probing(ctx)} if args else None


def _docker(ctx: Context, declared: Declared) -> Definition | None:
    """Consul's docker check: the agent runs the command in the container (`docker exec`)."""
    _agentless(ctx, declared, "docker")
    if not ctx.policy.enable_script_checks:
        raise Refused(
            declared,
            "Consul runs docker checks only where script checks are enabled; start "
            "registrator with --enable-script-checks to allow them",
        )
    args = command(ctx, declared)
    if not args:
        return None
    return {"DockerContainerID": ctx.container.id, "Args": args, **probing(ctx)}


KINDS: tuple[Kind, ...] = (
    Kind("HTTP", ":http", "http", "HTTP", _http),
    Kind("HTTPS", ":https", "http", "HTTPS", _https),
    Kind("TCP", ":tcp", "tcp", "TCP", _tcp),
    Kind("GRPC", ":grpc", "grpc", "gRPC", _grpc),
    # gliderlabs' ID (`service:<service-id>`), which applications passing their TTL already use
    Kind("TTL", "", "ttl", "TTL", _ttl),
    Kind("SCRIPT", ":script", "script", "script", _script),
    Kind("DOCKER", ":docker", "docker", "docker exec", _docker),
)


def _needs_tcp(ctx: Context, declared: Declared, what: str, *, key: str) -> None:
    if ctx.port.protocol == "tcp":
        return
    if ctx.reaches_a_tcp_port(declared, key):
        raise NotHere
    raise Invalid(declared, f"a {what} check cannot probe a {ctx.port.protocol} port")
