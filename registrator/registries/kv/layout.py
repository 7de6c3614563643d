"""How a key-value registry holds a service: one key per service, gliderlabs' layout.

Key `PREFIX/<service name>/<service id>`; the value is `ADDR:PORT` (IPv6 in brackets, as Go's
`net.JoinHostPort` writes it) or, for the CoreDNS/SkyDNS layout, `{"host": ADDR, "port": PORT}`.
A key holds nothing else, so a service read back from one is `Service(id, name, address,
port)` and `held` reduces a desired service to that same form: an idle resync compares equal.

Health: gliderlabs' KV registries carry none, so a reader of the keys would hand out a dead
endpoint. With `health` on (`--kv-health`, the default), a service that is paused or draining
(in maintenance) or whose Docker HEALTHCHECK mirror is critical is not held at all: the plan
removes its key and writes it again when the container is healthy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from registrator.core.model import Service, ServiceID

#: The check that mirrors Docker's HEALTHCHECK is `service:<id>` + this (core.checks).
DOCKER_HEALTH_SUFFIX = ":docker-health"
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

Format = Literal["address", "skydns"]


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a service's key lives and what its value says.

    `prefix` has no trailing slash ("" puts services at `/<name>/<id>`).
    """

    prefix: str
    format: Format = "address"

    @property
    def root(self) -> str:
        """Every service key starts with this."""
        return f"{self.prefix}/"

    def key(self, service: Service) -> str:
        return f"{self.root}{service.name}/{service.id}"

    def value(self, service: Service) -> str:
        if self.format == "skydns":
            return json.dumps({"host": service.address, "port": service.port})
        return join_host_port(service.address, service.port)

    def refusal(self, service: Service) -> str | None:
        """Why `service` cannot have a key of this layout, or None when it can."""
        for what, text in (("name", service.name), ("ID", service.id)):
            if not text or "/" in text or text.strip() != text:
                return f"service {what} {text!r} cannot be one segment of a key"
        if not service.address:
            return "no address to register (set -ip: this registry has no address of its own)"
        if not 0 < service.port < 65536:
            return f"port {service.port} is out of range"
        return None

    def parse(self, key: str, value: str) -> Service | None:
        """The service a key of this layout holds; None for a key of another shape."""
        if not key.startswith(self.root):
            return None
        name, slash, service_id = key[len(self.root) :].partition("/")
        if not slash or not name or not service_id or "/" in service_id:
            return None
        address, port = self._address(value)
        return Service(id=ServiceID(service_id), name=name, address=address, port=port)

    def _address(self, value: str) -> tuple[str, int]:
        """The value's address and port; ("", 0) when it does not parse (then it differs
        from anything desired, and the plan writes it again)."""
        if self.format == "skydns":
            try:
                data = json.loads(value)
                return str(data["host"]), int(data["port"])
            except (ValueError, TypeError, KeyError):
                return "", 0
        host, _, port = value.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return (host, int(port)) if port.isdigit() and host else ("", 0)


def join_host_port(address: str, port: int) -> str:
    """`ADDR:PORT`, with an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def skydns_prefix(domain: str) -> str:
    """`/skydns/<reversed domain>`: where CoreDNS's etcd plugin looks for `domain`'s names.

    Raises ValueError for a domain that is not dot-separated DNS labels.
    """
    labels = domain.strip(".").split(".")
    if not domain.strip(".") or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{domain!r} is not a DNS domain (dot-separated labels)")
    return "/skydns/" + "/".join(label.lower() for label in reversed(labels))


def held(service: Service, *, health: bool) -> Service | None:
    """`service` as a key-value registry holds it; None when it must not be held.

    With `health`, a service in maintenance (a paused or draining container) or whose
    Docker health mirror is critical is not held, so no reader is handed a dead endpoint.
    """
    if health and (service.maintenance or _unhealthy(service)):
        return None
    return Service(id=service.id, name=service.name, address=service.address, port=service.port)


def _unhealthy(service: Service) -> bool:
    mirror = f"service:{service.id}{DOCKER_HEALTH_SUFFIX}"
    return any(c.id == mirror and c.status == "critical" for c in service.checks)


def unequal(service: Service) -> Service:
    """`service` as read back, marked so that it compares unequal to anything desired (two
    keys hold one service ID: the plan writes it again, which removes the other key)."""
    return Service(id=service.id, name=service.name, address="", port=0)
