"""`SERVICE_CONNECT_UPSTREAMS`: the services a sidecar proxy makes reachable on local ports. Pure.

`db:9191,dc2:payments:9300,cache:127.0.0.2:9192`: each entry `[datacenter:]service:[address:]port`,
the bind address 127.0.0.1 unless given. A bad entry is reported and left out, as is one that
binds a local address and port another upstream of the container binds already (two sidecars
of one container, from a generic key on several ports, would both try).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

from registrator.core.declarations import Declared, port_number
from registrator.core.model import Service, Upstream
from registrator.core.policy import Findings

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_DATACENTER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TAKEN = "local port already bound by an upstream of the container; left out"


def upstreams(declared: Declared | None, found: Findings) -> tuple[Upstream, ...]:
    """`db:9191,dc2:payments:9300,cache:127.0.0.2:9192`; a bad entry is reported and left
    out, as is a second one binding the same local address and port."""
    if declared is None:
        return ()
    kept: dict[tuple[str, int], Upstream] = {}
    for item in (i.strip() for i in declared.value.split(",")):
        if not item:
            continue
        upstream = _upstream(item)
        if isinstance(upstream, str):
            found.problem(declared.source, item, upstream)
        elif (upstream.bind_address, upstream.bind_port) in kept:
            found.problem(
                declared.source, item, "local port already bound by an upstream; left out"
            )
        else:
            kept[(upstream.bind_address, upstream.bind_port)] = upstream
    return tuple(kept.values())


def _upstream(item: str) -> Upstream | str:
    """One upstream, or why it is not one."""
    parts = item.split(":")
    if len(parts) == 2:
        parts = ["", parts[0], "127.0.0.1", parts[1]]  # name:port
    elif len(parts) == 3 and _ipv4(parts[1]):
        parts = ["", *parts]  # name:address:port
    elif len(parts) == 3:
        parts = [parts[0], parts[1], "127.0.0.1", parts[2]]  # datacenter:name:port
    if len(parts) != 4:
        return "not an upstream ([datacenter:]service:[address:]port); left out"
    datacenter, name, address, number = parts
    bind_port = port_number(number)
    if not _NAME.fullmatch(name) or (datacenter and not _DATACENTER.fullmatch(datacenter)):
        return "not a service name (and datacenter) Consul knows; left out"
    if bind_port is None or not _ipv4(address):
        return "not a local IPv4 address and port to bind; left out"
    return Upstream(name, bind_port, datacenter, address)


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def one_bind_each(services: tuple[Service, ...], found: Findings) -> tuple[Service, ...]:
    """The container's services with each local address and port bound by one upstream only:
    the first sidecar to bind it keeps it (declare `SERVICE_<port>_CONNECT_UPSTREAMS` to give
    each port's sidecar its own)."""
    bound: set[tuple[str, int]] = set()
    kept: list[Service] = []
    for service in services:
        connect = service.connect
        if connect is None or not connect.upstreams:
            kept.append(service)
            continue
        own: list[Upstream] = []
        for upstream in connect.upstreams:
            where = (upstream.bind_address, upstream.bind_port)
            if where in bound:
                shown = f"{upstream.destination}:{upstream.bind_port} ({service.id})"
                found.problem("SERVICE_CONNECT_UPSTREAMS", shown, _TAKEN)
            else:
                bound.add(where)
                own.append(upstream)
        kept.append(
            dataclasses.replace(service, connect=dataclasses.replace(connect, upstreams=tuple(own)))
        )
    return tuple(kept)
