"""The services a container should have: a pure function of its inspect data and the policy.

Everything hard about registrator's rules lives here (where the service is reachable lives
in `addresses`), so it is tested exhaustively without a Docker engine or Consul agent. It never
raises on what a container declares: a value it cannot honour becomes a `Problem` (logged by
the caller) and that port or key is left out.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from registrator.core.addresses import NetworkView, check_endpoint, endpoint, network_view
from registrator.core.check_values import Probe
from registrator.core.checks import service_checks
from registrator.core.connect import in_mesh, is_connect_key
from registrator.core.declarations import Declarations, Declared, declarations, says_yes
from registrator.core.definition import tag_override, weights, with_declared_ports
from registrator.core.model import (
    OWNER_META_KEY,
    Container,
    Derivation,
    Port,
    Service,
    ServiceID,
)
from registrator.core.policy import Findings, Policy
from registrator.core.upstreams import one_bind_each

#: Keys with a meaning of their own; every other key becomes service Meta.
RESERVED_KEYS = frozenset(
    {"NAME", "TAGS", "ID", "IGNORE", "NETWORK", "ADDRESS_FAMILY", "PORT"}
    | {"WEIGHT_PASSING", "WEIGHT_WARNING", "ENABLE_TAG_OVERRIDE", "DRAIN"}
)
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})")
_ID_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,256}")
_META_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
MAX_META_PAIRS = 64
MAX_META_VALUE = 512
MAX_TAG = 512


def derive(container: Container, policy: Policy) -> Derivation:
    """The services `container` should have in Consul under `policy`."""
    found = Findings(container.name)
    decl = declarations(container)
    view = network_view(container)
    if _excluded(container, decl, policy, found):
        return Derivation(skipped=tuple(found.skipped))
    if view is None:
        found.skip("container", f"shares the network of {container.network_mode}, unknown")
        return Derivation(skipped=tuple(found.skipped))
    container = with_declared_ports(container, decl, found)
    _check_port_keys(container, decl, found)
    services: dict[ServiceID, Service] = {}
    for port in container.ports:
        service = _service(container, port, view=view, decl=decl, policy=policy, found=found)
        if service is None:
            continue
        if service.id in services:
            found.problem("SERVICE_ID", service.id, f"ID already used; port {port.key} skipped")
            continue
        services[service.id] = service
    kept = one_bind_each(tuple(services.values()), found)
    return Derivation(
        kept,
        tuple(found.problems),
        tuple(found.skipped),
        connect_ignored=found.connect_ignored,
    )


def _excluded(container: Container, decl: Declarations, policy: Policy, found: Findings) -> bool:
    """Whole containers left out: not running, not carrying the required label, ignored."""
    if not container.running:
        found.skip("container", "not running")
        return True
    if policy.require_label and not carries_label(container.labels, policy.require_label):
        found.skip("container", f"no label {policy.require_label} (--require-label)")
        return True
    ignore = decl.get("IGNORE")
    if says_yes(ignore):
        found.skip("container", f"{ignore.source}={ignore.value}")
        return True
    return False


def carries_label(labels: Mapping[str, str], required: str) -> bool:
    """`LABEL`: the label is there, whatever its value; `LABEL=VALUE`: with that value."""
    key, equals, value = required.partition("=")
    return key in labels and (not equals or labels[key] == value)


def _check_port_keys(container: Container, decl: Declarations, found: Findings) -> None:
    """A per-port key for a port the container does not have is a typo worth a line."""
    ports = {p.port for p in container.ports}
    for number, keys in sorted(decl.per_port.items()):
        if number not in ports:
            for declared in sorted(keys.values(), key=lambda d: d.source):
                reason = f"the container has no port {number}; key ignored"
                found.problem(declared.source, declared.value, reason)


def _service(
    container: Container,
    port: Port,
    *,
    view: NetworkView,
    decl: Declarations,
    policy: Policy,
    found: Findings,
) -> Service | None:
    ignore = decl.get("IGNORE", port.port)
    if says_yes(ignore):
        found.skip(port.key, f"{ignore.source}={ignore.value}")
        return None
    if policy.explicit and decl.get("NAME", port.port) is None:
        found.skip(port.key, "no SERVICE_NAME or SERVICE_<port>_NAME (--explicit)")
        return None
    where = endpoint(container, port, view=view, decl=decl, policy=policy, found=found)
    several = len(container.ports) > 1
    name = _name(container, port, decl=decl, several=several, found=found)
    if where is None or name is None:
        return None
    service = Service(
        id=_service_id(container, port, decl=decl, policy=policy, several=several, found=found),
        name=name,
        address=where.address,
        port=where.port,
        tags=_tags(port, decl.get("TAGS", port.port), forced=policy.tags, found=found),
        meta=_meta(container, port, decl, policy, found),
        tagged_addresses=where.tagged,
        weights=weights(decl, port.port, found),
        enable_tag_override=tag_override(decl, port.port, found),
        container=container.id,
    )
    probe = _probe(container, port, view=view, decl=decl, policy=policy)
    service = _with_checks(service, container, port, probe, decl=decl, policy=policy, found=found)
    return in_mesh(service, container, port, decl=decl, policy=policy, found=found)


def _probe(
    container: Container, port: Port, *, view: NetworkView, decl: Declarations, policy: Policy
) -> Probe | None:
    """Where the service's checks connect when SERVICE_CHECK_PORT sends them elsewhere."""
    declared = check_endpoint(container, port, view=view, decl=decl, policy=policy)
    if declared is None:
        return None
    key, where = declared
    if isinstance(where, str):
        return Probe(key, reason=where)
    return Probe(key, where.address, where.port)


def _with_checks(
    service: Service,
    container: Container,
    port: Port,
    probe: Probe | None,
    *,
    decl: Declarations,
    policy: Policy,
    found: Findings,
) -> Service:
    """The service with its health checks (`checks.py`); their problems join the others."""
    checks, problems = service_checks(
        service, container=container, port=port, decl=decl, policy=policy.checks, probe=probe
    )
    for problem in problems:
        found.problem(problem.key, problem.value, problem.reason)
    return dataclasses.replace(service, checks=checks)


def _per_port(decl: Declarations, key: str, port: Port) -> Declared | None:
    return decl.per_port.get(port.port, {}).get(key)


def _name(
    container: Container, port: Port, *, decl: Declarations, several: bool, found: Findings
) -> str | None:
    """SERVICE_<port>_NAME as is; SERVICE_NAME or the image name, `-<port>` with several ports."""
    per_port = _per_port(decl, "NAME", port)
    declared = per_port or decl.generic.get("NAME")
    if declared is not None and not _NAME_RE.fullmatch(declared.value):
        found.problem(declared.source, declared.value, "not a valid DNS label; port skipped")
        found.skip(port.key, f"invalid {declared.source}")
        return None
    base = declared.value if declared is not None else _default(container)
    if per_port is None and several:
        return f"{base}-{port.port}"
    return base


def _default(container: Container) -> str:
    """A Swarm task is named after its service, any other container after its image."""
    if container.swarm is not None:
        return _dns_safe(container.swarm.service_name)
    return default_name(container.image)


def default_name(image: str) -> str:
    """`registry:5000/team/nginx:1.25@sha256:…` -> `nginx`, made safe for DNS."""
    return _dns_safe(image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0])


def _dns_safe(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")[:63]
    return name or "service"


def _service_id(
    container: Container,
    port: Port,
    *,
    decl: Declarations,
    policy: Policy,
    several: bool,
    found: Findings,
) -> ServiceID:
    """`<hostname>:<container>:<port>[:udp]`, or SERVICE_ID (SERVICE_<port>_ID) instead.

    A generic SERVICE_ID on a container with several ports gets `-<port>` as names do, and a
    UDP port always keeps its `:udp`, so one declaration never makes two services collide.
    """
    protocol = "" if port.protocol == "tcp" else f":{port.protocol}"
    per_port = _per_port(decl, "ID", port)
    declared = per_port or decl.generic.get("ID")
    if declared is not None:
        if _ID_RE.fullmatch(declared.value):
            suffix = f"-{port.port}" if per_port is None and several else ""
            return ServiceID(f"{declared.value}{suffix}{protocol}")
        reason = "not a usable service ID (letters, digits, _ . : @ - up to 256): default used"
        found.problem(declared.source, declared.value, reason)
    return ServiceID(f"{policy.hostname}:{container.name}:{port.port}{protocol}")


def _tags(
    port: Port, declared: Declared | None, *, forced: tuple[str, ...], found: Findings
) -> tuple[str, ...]:
    """Comma-separated, `\\,` escaping a comma; order kept, duplicates dropped, `udp` added."""
    text = "" if declared is None else declared.value
    tags = [p.replace("\0", ",").strip() for p in text.replace("\\,", "\0").split(",")]
    for tag in tags:
        if len(tag) > MAX_TAG and declared is not None:
            found.problem(declared.source, tag, f"tag longer than {MAX_TAG} characters: dropped")
    protocol = () if port.protocol == "tcp" else (port.protocol,)
    kept = (t for t in (*tags, *forced, *protocol) if t and len(t) <= MAX_TAG)
    return tuple(dict.fromkeys(kept))


def _meta(
    container: Container, port: Port, decl: Declarations, policy: Policy, found: Findings
) -> tuple[tuple[str, str], ...]:
    """The declared keys without a meaning of their own, then registrator's: those win."""
    own = {OWNER_META_KEY: policy.hostname, **swarm_meta(container)}
    meta: dict[str, str] = {}
    for key, declared in sorted(decl.keys(port.port).items()):
        if key in RESERVED_KEYS or key.startswith("CHECK_") or is_connect_key(key):
            continue
        meta_key = key.lower()
        reason = _meta_problem(meta_key, declared.value, len(meta) + len(own))
        if reason:
            found.problem(declared.source, declared.value, reason)
            continue
        meta[meta_key] = declared.value
    meta.update(own)
    return tuple(sorted(meta.items()))


def swarm_meta(container: Container) -> dict[str, str]:
    """`swarm_service`, `swarm_slot` (replicated services only) and `swarm_task` of a task."""
    task = container.swarm
    if task is None:
        return {}
    meta = {"swarm_service": task.service_name, "swarm_slot": task.slot, "swarm_task": task.task_id}
    return {k: v for k, v in meta.items() if v}


def _meta_problem(key: str, value: str, count: int) -> str:
    """Consul's limits, as Consul counts them: a value's length in UTF-8 bytes."""
    if not _META_KEY_RE.fullmatch(key) or key.startswith("consul-"):
        return "not a Consul Meta key (letters, digits, _ and - up to 128, no consul- prefix)"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_META_VALUE:
        return f"Meta value longer than {MAX_META_VALUE} bytes (Consul counts UTF-8 bytes)"
    if count >= MAX_META_PAIRS:
        return f"more than {MAX_META_PAIRS} Meta pairs"
    return ""
