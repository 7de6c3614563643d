"""The services a container should have: a pure function of its inspect data and the policy.

Everything hard about registrator's rules lives here, so it is tested exhaustively without a
Docker engine or Consul agent. It never raises on what a container declares: a value it cannot
honour becomes a `Problem` (logged by the caller) and that port or key is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registrator.declarations import Declarations, declarations, is_true
from registrator.model import (
    OWNER_META_KEY,
    Binding,
    Container,
    Derivation,
    Port,
    Problem,
    Service,
    ServiceID,
)

#: Keys with a meaning of their own; every other key becomes service Meta.
RESERVED_KEYS = frozenset({"NAME", "TAGS", "ID", "IGNORE", "NETWORK"})
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})$")
_META_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_UNSPECIFIED = {"", "0.0.0.0", "::"}
MAX_META_PAIRS = 64
MAX_META_VALUE = 512


@dataclass(frozen=True, slots=True)
class Policy:
    """The part of the settings that shapes derivation."""

    hostname: str
    host_ip: str = ""  # -ip: address for published ports
    advertise_address: str = ""  # the local Consul agent's address, the last fallback
    tags: tuple[str, ...] = ()  # -tags: added to every service
    require_label: str = ""  # --require-label KEY or KEY=VALUE: only containers carrying it


class _Collector:
    """Gathers problems and skips while one container is derived."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.problems: list[Problem] = []
        self.skipped: list[tuple[str, str]] = []

    def problem(self, key: str, value: str, reason: str) -> None:
        self.problems.append(Problem(self.container.name, key, value, reason))

    def skip(self, what: str, why: str) -> None:
        self.skipped.append((what, why))


def derive(container: Container, policy: Policy) -> Derivation:
    """The services `container` should have in Consul under `policy`."""
    found = _Collector(container)
    decl = declarations(container)
    if not container.running:
        found.skip("container", "not running")
        return Derivation(skipped=tuple(found.skipped))
    if policy.require_label and not has_label(container, policy.require_label):
        found.skip("container", f"lacks the required label {policy.require_label}")
        return Derivation(skipped=tuple(found.skipped))
    if is_true(decl.value("IGNORE")):
        found.skip("container", f"{decl.get('IGNORE').source}=true")  # type: ignore[union-attr]
        return Derivation(skipped=tuple(found.skipped))
    candidates = _candidate_ports(container, found)
    services = [
        service
        for port in candidates
        if (
            service := _service(
                container, port, decl=decl, policy=policy, port_count=len(candidates), found=found
            )
        )
    ]
    return Derivation(tuple(services), tuple(found.problems), tuple(found.skipped))


def has_label(container: Container, required: str) -> bool:
    """`KEY` requires the label to be present; `KEY=VALUE` requires that value."""
    key, sep, value = required.partition("=")
    return key in container.labels and (not sep or container.labels[key] == value)


def _candidate_ports(container: Container, found: _Collector) -> list[Port]:
    ports = []
    for port in container.ports:
        if port.protocol != "tcp":
            found.skip(port.key, f"{port.protocol} ports are not registered yet")
        elif not port.bindings:
            found.skip(port.key, "exposed but not published")
        else:
            ports.append(port)
    return ports


def _service(
    container: Container,
    port: Port,
    *,
    decl: Declarations,
    policy: Policy,
    port_count: int,
    found: _Collector,
) -> Service | None:
    if is_true(decl.value("IGNORE", port.port)):
        found.skip(port.key, "ignored by SERVICE_<port>_IGNORE")
        return None
    name = _name(container, port, decl, port_count, found)
    if name is None:
        return None
    binding = _binding(port)
    return Service(
        id=ServiceID(f"{policy.hostname}:{container.name}:{port.port}"),
        name=name,
        address=_address(binding, policy),
        port=binding.host_port,
        tags=_tags(decl.value("TAGS", port.port), policy.tags),
        meta=_meta(container, port, decl, policy, found),
        container=container.id,
    )


def _name(
    container: Container, port: Port, decl: Declarations, port_count: int, found: _Collector
) -> str | None:
    per_port = decl.per_port.get(port.port, {}).get("NAME")
    declared = per_port or decl.generic.get("NAME")
    if declared is not None and not _NAME_RE.match(declared.value):
        found.problem(declared.source, declared.value, "not a valid DNS label; port skipped")
        found.skip(port.key, f"invalid {declared.source}")
        return None
    base = declared.value if declared is not None else default_name(container.image)
    if per_port is None and port_count > 1:
        return f"{base}-{port.port}"
    return base


def default_name(image: str) -> str:
    """`registry:5000/team/nginx:1.25@sha256:…` -> `nginx`, made safe for DNS."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    name = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")[:63]
    return name or "service"


def _binding(port: Port) -> Binding:
    """One binding per port however many Docker reports: IPv4 first, lowest host port."""
    return min(port.bindings, key=lambda b: (":" in b.host_ip, b.host_port, b.host_ip))


def _address(binding: Binding, policy: Policy) -> str:
    if binding.host_ip not in _UNSPECIFIED:
        return binding.host_ip
    return policy.host_ip or policy.advertise_address


def _tags(declared: str, forced: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated, `\\,` escaping a comma; order kept, duplicates dropped."""
    parts = [p.replace("\0", ",").strip() for p in declared.replace("\\,", "\0").split(",")]
    return tuple(dict.fromkeys(t for t in (*parts, *forced) if t))


def _meta(
    container: Container, port: Port, decl: Declarations, policy: Policy, found: _Collector
) -> tuple[tuple[str, str], ...]:
    meta: dict[str, str] = {}
    for key, declared in sorted(decl.keys(port.port).items()):
        if key in RESERVED_KEYS or key.startswith("CHECK_"):
            continue
        meta_key = key.lower()
        reason = _meta_problem(meta_key, declared.value, len(meta))
        if reason:
            found.problem(declared.source, declared.value, reason)
            continue
        meta[meta_key] = declared.value
    meta[OWNER_META_KEY] = policy.hostname
    return tuple(sorted(meta.items()))


def _meta_problem(key: str, value: str, count: int) -> str:
    if not _META_KEY_RE.match(key) or key.startswith("consul-"):
        return "not a Consul Meta key (letters, digits, _ and - up to 128, no consul- prefix)"
    if len(value) > MAX_META_VALUE:
        return f"Meta value longer than {MAX_META_VALUE} characters"
    if count >= MAX_META_PAIRS - 1:
        return f"more than {MAX_META_PAIRS} Meta pairs"
    return ""
