"""The floor: what the calls of one event cost with no registrator at all, measured in the run.

An event costs at least one `docker inspect` and one agent write. Both are timed here as raw
HTTP requests over kept-alive connections (Docker's unix socket, the agent's port), on the
same machine, agent and containers as the subjects, so the registrators' figures can be read
as a multiple of it. The agent holds as many services as it does in the scenarios (its cost
per write grows with them). The Docker event delivery (`timeNano` -> a raw subscriber reads
the event) is measured too: every registrator pays it before its first call.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from benchmarks.stats import percentile

MS = 1_000_000  # nanoseconds
FLOOR_HOST = "bench-floor"


@dataclass(frozen=True, slots=True)
class Floor:
    """Medians of raw calls, in milliseconds."""

    inspect_ms: float
    register_ms: float
    deregister_ms: float
    #: the same writes through the counting proxy (where the subjects' writes are timed)
    register_proxied_ms: float
    deregister_proxied_ms: float
    #: Docker's event time -> a raw subscriber has read the event
    delivery_ms: float
    samples: int

    @property
    def registration_ms(self) -> float:
        """The least one registration costs: an inspect and a register."""
        return self.inspect_ms + self.register_ms


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (Docker's API)."""

    def __init__(self, path: str, *, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def docker_socket() -> str:
    """The unix socket DOCKER_HOST names (the default socket when it names none)."""
    url = urlsplit(os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    return url.path if url.scheme == "unix" else "/var/run/docker.sock"


def timed_ms(call: Callable[[], object], samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        begin = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - begin) / MS)
    return times


def exchange(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes = b""
) -> int:
    headers = {"Content-Type": "application/json"} if body else {}
    connection.request(method, path, body=body or None, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def inspect_ms(container: str, samples: int) -> float:
    connection = UnixHTTPConnection(docker_socket())
    try:
        path = f"/containers/{container}/json"
        return percentile(timed_ms(lambda: exchange(connection, "GET", path), samples), 50)
    finally:
        connection.close()


def floor_service(n: int) -> dict[str, object]:
    """A service shaped like the subjects' (one port, a few meta keys)."""
    return {
        "ID": f"{FLOOR_HOST}:floor-{n}:80",
        "Name": "busybox",
        "Address": "127.0.0.1",
        "Port": 30000 + n,
        "Tags": [],
        "Meta": {"registrator_host": FLOOR_HOST, "container": f"floor-{n}"},
        "Checks": [],
    }


def agent_connection(address: str) -> http.client.HTTPConnection:
    """A kept-alive connection to the agent, without Nagle's algorithm (as Go's clients)."""
    connection = http.client.HTTPConnection(address, timeout=30)
    connection.connect()
    assert connection.sock is not None
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def fill(address: str, count: int) -> None:
    """`count` services on the agent, as many as the scenarios keep registered."""
    connection = agent_connection(address)
    try:
        for n in range(count):
            body = json.dumps(floor_service(n)).encode()
            exchange(connection, "PUT", "/v1/agent/service/register", body)
    finally:
        connection.close()


def writes_ms(address: str, samples: int) -> tuple[float, float]:
    """Median register and deregister PUT of one more service, alternating."""
    connection = agent_connection(address)
    service = floor_service(99_999)
    body = json.dumps(service).encode()
    deregister = f"/v1/agent/service/deregister/{quote(str(service['ID']))}"
    registers, deregisters = [], []
    try:
        for _ in range(samples):
            registers += timed_ms(
                lambda: exchange(connection, "PUT", "/v1/agent/service/register", body), 1
            )
            deregisters += timed_ms(lambda: exchange(connection, "PUT", deregister), 1)
    finally:
        connection.close()
    return percentile(registers, 50), percentile(deregisters, 50)


class RawEvents:
    """A raw subscriber to Docker's events of one label: when each one was read."""

    def __init__(self, label: str) -> None:
        self._connection = UnixHTTPConnection(docker_socket(), timeout=3600)
        filters = json.dumps({"type": ["container"], "label": [label]})
        self._connection.request("GET", f"/events?filters={quote(filters)}")
        self._response = self._connection.getresponse()
        self.delays_ms: list[float] = []
        self._thread = threading.Thread(target=self._read, name="raw-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while line := self._response.readline():
                now = time.time_ns()
                event = json.loads(line)
                if event.get("Action") in ("start", "die"):
                    self.delays_ms.append((now - int(event["timeNano"])) / MS)
        except (OSError, ValueError, http.client.HTTPException):
            return
        finally:
            self._connection.close()

    def close(self) -> None:
        """Ends the read; the reading thread closes the connection (closing it under a
        blocked read would pull its buffer away)."""
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


def measure(
    *,
    agent: str,
    proxy: str,
    container: str,
    label: str,
    cycle: Callable[[], None],
    services: int,
    samples: int = 200,
    cycles: int = 10,
) -> Floor:
    """The floor on `agent` (filled with `services` first) and the running `container`;
    `cycle` starts and kills a container of `label`, for the event delivery."""
    fill(agent, services)
    inspect = inspect_ms(container, samples)
    register, deregister = writes_ms(agent, samples)
    register_proxied, deregister_proxied = writes_ms(proxy, samples)
    events = RawEvents(label)
    try:
        for _ in range(cycles):
            cycle()
        deadline = time.monotonic() + 30
        while len(events.delays_ms) < 2 * cycles and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        events.close()
    return Floor(
        inspect_ms=inspect,
        register_ms=register,
        deregister_ms=deregister,
        register_proxied_ms=register_proxied,
        deregister_proxied_ms=deregister_proxied,
        delivery_ms=percentile(events.delays_ms or [float("nan")], 50),
        samples=samples,
    )
