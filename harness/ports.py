"""Ports for the servers the harness starts, without a race.

A port found free and closed can be taken by anything else on the machine (another test's
server, a second copy of the suite) before the server binds it. So nothing here trusts that:
`start_on_free_ports` reserves fresh ports, hands them to the server's start at once, and when
the server says its address is in use (`AddressInUse`, raised by its start), starts it again on
fresh ports, a bounded number of times, each retry logged. A restart on the same port waits for
the old process to have released it (`wait_released`). A test that needs a port where nothing
listens holds one bound but not listening (`refusing_port`): connections to it are refused and
nothing else can take it while the test runs.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TypeVar

from harness.waits import wait_until

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Ports the harness hands out: below Linux's ephemeral range (32768-60999), from which both
#: outgoing connections and Docker's published ports are allocated.
PORTS = range(20000, 32768)
#: how each server here says it could not bind (Go's net package, nginx, HAProxy, Python)
_IN_USE = ("address already in use", "address in use", "cannot bind socket")
ATTEMPTS = 6


class AddressInUse(RuntimeError):
    """A server could not bind one of the ports it was given."""


def says_in_use(text: str) -> bool:
    """Whether a server's output says one of its addresses was taken."""
    lowered = text.lower()
    return any(phrase in lowered for phrase in _IN_USE)


def exited(what: str, output: str) -> RuntimeError:
    """The error for a server that exited while starting: `AddressInUse` when its output says
    a port was taken (the start is then retried on fresh ports), else a plain RuntimeError."""
    kind = AddressInUse if says_in_use(output) else RuntimeError
    return kind(f"{what} exited: {output[-2000:]}")


def start_on_free_ports(
    count: int, start: Callable[[list[int]], T], *, what: str, attempts: int = ATTEMPTS
) -> T:
    """`start(ports)` with `count` fresh ports, again with fresh ones while it raises
    `AddressInUse` (at most `attempts` times in all)."""
    for attempt in range(1, attempts + 1):
        try:
            return start(_pick(count))
        except AddressInUse as e:
            if attempt == attempts:
                raise
            log.warning("%s: a port was taken (%s); starting again on fresh ports", what, e)
    raise AssertionError("unreachable")


def _pick(count: int) -> list[int]:
    """`count` distinct ports of PORTS, each bound (TCP and UDP) while the others are picked, so
    none is handed out twice; released on return, for the server to bind right away."""
    with ExitStack() as held:
        ports: list[int] = []
        while len(ports) < count:
            port = random.choice(PORTS)
            if port in ports:
                continue
            try:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = held.enter_context(socket.socket(socket.AF_INET, kind))
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
        return ports


def free_port_range(count: int) -> range:
    """`count` consecutive ports of PORTS, each free on loopback right now (for a range a
    process allocates from itself, as a Consul agent its sidecar ports: it binds them only
    later, so they are not held meanwhile)."""
    while True:
        start = random.randrange(PORTS.start, PORTS.stop - count)
        with ExitStack() as stack:
            try:
                for port in range(start, start + count):
                    s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return range(start, start + count)


def bindable(host: str, port: int) -> bool:
    """Whether a listening TCP socket could bind `host:port` now (SO_REUSEADDR, as servers
    do: a port with connections only in TIME_WAIT counts as released)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_released(host: str, ports: list[int], *, timeout: float = 30) -> None:
    """Wait until every one of `ports` on `host` can be bound again (a stopped server's)."""
    wait_until(
        lambda: all(bindable(host, port) for port in ports),
        timeout=timeout,
        what=f"ports {ports} on {host} released",
    )


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port where nothing listens, held for the `with` block: bound without
    `listen`, so connecting is refused and no other process can bind it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])
