"""The values of a `SERVICE_CHECK_*` declaration, read and judged in Consul's own terms. Pure.

Durations (as Go parses them, within Consul's range), statuses, methods, headers, counts and
where a check connects are checked here, so that nothing Consul would refuse, or misread, is
ever sent: a value that cannot be honoured raises `Invalid`, naming the declaration, and
`checks.py` decides what takes the check's place.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from registrator.core.declarations import Declarations, Declared
from registrator.core.durations import DurationError, nanoseconds
from registrator.core.flags import parse_flag
from registrator.core.model import CheckValue, Container, Port, Service
from registrator.core.policy import CheckPolicy

DEFAULT_INTERVAL = "10s"
STATUSES = ("passing", "warning", "critical")
#: Consul reads check thresholds into a Go `int`: 32 bits on the 32-bit platforms it runs on.
MAX_COUNT = 2**31 - 1
#: `SERVICE_CHECK_<key>` -> the Consul field of the checks Consul runs itself
THRESHOLDS = {
    "SUCCESS_BEFORE_PASSING": "SuccessBeforePassing",
    "FAILURES_BEFORE_CRITICAL": "FailuresBeforeCritical",
}
_METHOD = re.compile(r"[A-Za-z]{1,20}")

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
class Probe:
    """`SERVICE_CHECK_PORT`: where the checks Consul runs connect instead of the service's
    own address and port; `reason` when that port cannot be reached."""

    declared: Declared
    address: str = ""
    port: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Context:
    """What the checks of one service are built from: its port's declarations, the options."""

    service: Service
    container: Container
    port: Port
    decl: Declarations
    policy: CheckPolicy
    probe: Probe | None = None

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

    def target(self) -> str:
        """`ADDR:PORT` the HTTP, TCP and gRPC checks connect to, an IPv6 literal bracketed."""
        address, port = self.service.address, self.service.port
        if self.probe is not None:
            if self.probe.reason:
                raise Invalid(self.probe.declared, self.probe.reason)
            address, port = self.probe.address, self.probe.port
        host = f"[{address}]" if ":" in address else address
        return f"{host}:{port}"


def common(ctx: Context) -> Definition:
    """What every declared check carries: initial status and deregistration delay."""
    definition: Definition = {}
    status = initial_status(ctx)
    if status:
        definition["Status"] = status
    after = ctx.get("DEREGISTER_AFTER")
    if after is not None:
        definition["DeregisterCriticalServiceAfter"] = duration(after)
    return definition


def probing(ctx: Context) -> Definition:
    """Interval, timeout and thresholds of a check Consul runs itself."""
    interval = ctx.get("INTERVAL")
    definition: Definition = {"Interval": duration(interval) if interval else DEFAULT_INTERVAL}
    timeout = ctx.get("TIMEOUT")
    if timeout is not None:
        definition["Timeout"] = duration(timeout)
    for key, field in THRESHOLDS.items():
        declared = ctx.get(key)
        if declared is not None:
            definition[field] = count(declared)
    return definition


def probing_keys(ctx: Context) -> list[Declared]:
    """The declarations only a check Consul runs can honour (not a TTL check)."""
    keys = ("INTERVAL", *THRESHOLDS)
    return [d for d in (ctx.get(key) for key in keys) if d is not None]


def initial_status(ctx: Context) -> str:
    declared = ctx.get("INITIAL_STATUS")
    if declared is None:
        return ""
    status = declared.value.strip().lower()
    if status not in STATUSES:
        raise Invalid(declared, "not a check status (passing, warning, critical)")
    return status


def duration(declared: Declared) -> str:
    """The value, when Consul reads it as a positive duration within its range."""
    value = declared.value.strip()
    try:
        nanoseconds(value)
    except DurationError as e:
        raise Invalid(declared, str(e)) from e
    return value


def count(declared: Declared) -> int:
    value = declared.value.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_COUNT:
        raise Invalid(declared, f"not a count (a whole number from 0 to {MAX_COUNT})")
    return int(value)


def method(declared: Declared) -> str:
    value = declared.value.strip()
    if not _METHOD.fullmatch(value):
        raise Invalid(declared, "not an HTTP method")
    return value.upper()


def flag(declared: Declared) -> bool:
    parsed = parse_flag(declared.value)
    if parsed is None:
        raise Invalid(declared, "not true or false")
    return parsed


def header(declared: Declared) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`{"X-Token": "abc", "Accept": ["a", "b"]}` -> sorted (name, values) pairs."""
    try:
        raw = json.loads(declared.value)
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or not raw:
        raise Invalid(declared, 'not a JSON object of header names to values ({"X-A": "b"})')
    pairs = []
    for name, value in raw.items():
        values = [value] if isinstance(value, str) else value
        if not name or not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise Invalid(declared, f"header {name!r}: values must be strings")
        pairs.append((str(name), tuple(values)))
    return tuple(sorted(pairs))


def command(ctx: Context, declared: Declared) -> tuple[str, ...]:
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
