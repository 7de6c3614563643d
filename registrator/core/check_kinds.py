"""How each `SERVICE_CHECK_<kind>` declaration becomes a Consul check definition. Pure.

The values are checked here, in Consul's own terms (durations, statuses, methods, headers), so
that nothing Consul would refuse, or misread, is ever sent: a value that cannot be honoured
raises `Invalid`, naming the declaration, and `checks.py` decides what takes the check's place.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from registrator.core.declarations import Declarations, Declared
from registrator.core.flags import parse_flag
from registrator.core.model import CheckValue, Container, Port, Service
from registrator.core.policy import CheckPolicy

DEFAULT_INTERVAL = "10s"
STATUSES = ("passing", "warning", "critical")
_DURATION = re.compile(r"^(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
_METHOD = re.compile(r"^[A-Za-z]{1,20}$")
_GRPC_SERVICE = re.compile(r"^[A-Za-z0-9_.-]+$")
MODIFIERS = frozenset(
    {"INTERVAL", "TIMEOUT", "INITIAL_STATUS", "DEREGISTER_AFTER", "HTTP_METHOD", "HEADER"}
    | {"TLS_SKIP_VERIFY", "GRPC_USE_TLS", "DOCKER_HEALTH"}
)
_PROBING = ("HTTP", "HTTPS", "TCP", "GRPC", "SCRIPT", "DOCKER")
_DURATION_HINT = "not a duration in Consul's syntax (500ms, 10s, 1m30s)"

Definition = dict[str, CheckValue]


class Invalid(Exception):
    """A declaration the check it belongs to cannot be built from."""

    def __init__(self, declared: Declared, reason: str) -> None:
        super().__init__(reason)
        self.declared = declared
        self.reason = reason


class Refused(Invalid):
    """A declaration honoured only with an opt-in the operator did not give."""


class NotHere(Exception):
    """A declaration meant for another port of the container (its TCP twin of a UDP port)."""


@dataclass(frozen=True, slots=True)
class Context:
    """What the checks of one service are built from: its port's declarations, the options."""

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
    definition: Definition = {"HTTP": f"{scheme}://{_host_port(ctx.service)}{path}"}
    definition.update(_probing(ctx))
    method = ctx.get("HTTP_METHOD")
    if method is not None:
        if not _METHOD.match(method.value.strip()):
            raise Invalid(method, "not an HTTP method")
        definition["Method"] = method.value.strip().upper()
    header = ctx.get("HEADER")
    if header is not None:
        definition["Header"] = _header(header)
    return definition


def _tcp(ctx: Context, declared: Declared) -> Definition | None:
    if not flag(declared):
        return None
    _needs_tcp(ctx, declared, "TCP", key="TCP")
    return {"TCP": _host_port(ctx.service), **_probing(ctx)}


def _grpc(ctx: Context, declared: Declared) -> Definition | None:
    """`true` probes the server's overall health; any other name, that gRPC service's."""
    value = declared.value.strip()
    if parse_flag(value) is False:
        return None
    target = _host_port(ctx.service)
    if parse_flag(value) is None:
        if not _GRPC_SERVICE.match(value):
            raise Invalid(declared, "neither true/false nor a gRPC service name")
        target = f"{target}/{value}"
    _needs_tcp(ctx, declared, "gRPC", key="GRPC")
    definition: Definition = {"GRPC": target, **_probing(ctx)}
    use_tls = ctx.get("GRPC_USE_TLS")
    if use_tls is not None and flag(use_tls):
        definition["GRPCUseTLS"] = True
        skip = ctx.get("TLS_SKIP_VERIFY")
        if skip is not None and flag(skip):
            definition["TLSSkipVerify"] = True
    return definition


def _ttl(ctx: Context, declared: Declared) -> Definition:
    interval = ctx.get("INTERVAL")
    if interval is not None and not any(ctx.get(key) for key in _PROBING):
        raise Invalid(interval, "a TTL check has no interval (the application reports in)")
    return {"TTL": _duration(declared)}


def _script(ctx: Context, declared: Declared) -> Definition | None:
    if not ctx.policy.enable_script_checks:
        raise Refused(
            declared,
            "script checks run commands on the Consul agent's host and are off unless "
            "registrator runs with --enable-script-checks",
        )
    args = _command(ctx, declared)
    return {"Args": args, **_probing(ctx)} if args else None


def _docker(ctx: Context, declared: Declared) -> Definition | None:
    """Consul's docker check: the agent runs the command in the container (`docker exec`)."""
    if not ctx.policy.enable_script_checks:
        raise Refused(
            declared,
            "Consul runs docker checks only where script checks are enabled; start "
            "registrator with --enable-script-checks to allow them",
        )
    args = _command(ctx, declared)
    if not args:
        return None
    return {"DockerContainerID": ctx.container.id, "Args": args, **_probing(ctx)}


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


# -- values ---------------------------------------------------------------------------------


def common(ctx: Context) -> Definition:
    """What every declared check carries: initial status and deregistration delay."""
    definition: Definition = {}
    status = initial_status(ctx)
    if status:
        definition["Status"] = status
    after = ctx.get("DEREGISTER_AFTER")
    if after is not None:
        definition["DeregisterCriticalServiceAfter"] = _duration(after)
    return definition


def _probing(ctx: Context) -> Definition:
    """Interval and timeout of a check Consul runs itself."""
    interval = ctx.get("INTERVAL")
    definition: Definition = {"Interval": _duration(interval) if interval else DEFAULT_INTERVAL}
    timeout = ctx.get("TIMEOUT")
    if timeout is not None:
        definition["Timeout"] = _duration(timeout)
    return definition


def initial_status(ctx: Context) -> str:
    declared = ctx.get("INITIAL_STATUS")
    if declared is None:
        return ""
    status = declared.value.strip().lower()
    if status not in STATUSES:
        raise Invalid(declared, "not a check status (passing, warning, critical)")
    return status


def _duration(declared: Declared) -> str:
    value = declared.value.strip()
    if not _DURATION.match(value) or not re.search(r"[1-9]", value):
        raise Invalid(declared, _DURATION_HINT)
    return value


def flag(declared: Declared) -> bool:
    parsed = parse_flag(declared.value)
    if parsed is None:
        raise Invalid(declared, "not true or false")
    return parsed


def _header(declared: Declared) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`{"X-Token": "abc", "Accept": ["a", "b"]}` -> sorted (name, values) pairs."""
    try:
        raw = json.loads(declared.value)
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or not raw:
        raise Invalid(declared, 'not a JSON object of header names to values ({"X-A": "b"})')
    header = []
    for name, value in raw.items():
        values = [value] if isinstance(value, str) else value
        if not name or not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise Invalid(declared, f"header {name!r}: values must be strings")
        header.append((str(name), tuple(values)))
    return tuple(sorted(header))


def _command(ctx: Context, declared: Declared) -> tuple[str, ...]:
    """Split like a shell would; `$SERVICE_IP` and `$SERVICE_PORT` replaced in each argument."""
    try:
        args = shlex.split(declared.value)
    except ValueError as e:
        raise Invalid(declared, f"not a command line ({e})") from e
    values = {"SERVICE_IP": ctx.service.address, "SERVICE_PORT": str(ctx.service.port)}
    return tuple(_substitute(arg, values) for arg in args)


def _substitute(arg: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        arg = arg.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return arg


def _needs_tcp(ctx: Context, declared: Declared, what: str, *, key: str) -> None:
    if ctx.port.protocol == "tcp":
        return
    if ctx.reaches_a_tcp_port(declared, key):
        raise NotHere
    raise Invalid(declared, f"a {what} check cannot probe a {ctx.port.protocol} port")


def _host_port(service: Service) -> str:
    host = f"[{service.address}]" if ":" in service.address else service.address
    return f"{host}:{service.port}"
