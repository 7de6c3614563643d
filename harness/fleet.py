"""A fleet on one machine: a real Consul cluster, nginx in front of its servers, and one
registrator per simulated host. The fleet tests and the fleet benchmark both start it.

    servers        server-1..3  PREFIX.1-3    `-server -bootstrap-expect 3`
    client agents  host-1..K    PREFIX.11...  one per simulated host, `-retry-join` the servers
    nginx          PREFIX.1     round-robin over the servers' HTTP ports: where readers look
    registrators   host-1..K    `python -m registrator` per host: `--hostname host-k`, talking
                                to host k's client agent, `--require-label FLEET_LABEL=<run>.host-k`
                                (`agentless`: no client agents; each registrator writes the
                                catalog through nginx, `consul-catalog://`, its node at PREFIX.1k)

PREFIX is `127.X.Y` with X and Y drawn per fleet: Linux routes all of 127.0.0.0/8 to lo, so
each agent has an address of its own (its host's services are registered at it) and two fleets
never share one. Ports are free ones, data directories and logs live under the fleet's
workdir. One dockerd stands in for the K hosts: a container is on host k when it carries
`labels(k)`, and only host k's registrator sees it. Every process is the fleet's own, started
here and stopped by `stop()`; nothing of the machine's (its nginx service, say) is touched.
The agents are `cluster.ConsulNode`s, the balancer `nginx.Nginx`.
"""

from __future__ import annotations

import json
import random
import urllib.error
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cluster import PORT_NAMES, SERVERS, ConsulNode, http_get, http_put
from harness.nginx import Nginx
from harness.ports import AddressInUse, exited, start_on_free_ports
from harness.processes import RegistratorProcess
from harness.waits import wait_until

__all__ = ["FLEET_LABEL", "ConsulNode", "Fleet", "HostRegistrator", "Nginx", "http_get", "http_put"]

ROOT = Path(__file__).resolve().parent.parent
#: the label that puts a container on a simulated host (value `<run>.host-<k>`)
FLEET_LABEL = "org.registrator.fleet.host"


@dataclass
class HostRegistrator(RegistratorProcess):
    """The real registrator CLI of one simulated host, logging JSON at DEBUG to a file."""

    host: str = ""

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON log records (of `event`), in order; other lines are skipped."""
        found = []
        for line in self.log.splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if event is None or record.get("event") == event:
                found.append(record)
        return found

    def writes(self) -> int:
        """Services registered, updated or deregistered so far, from `reconcile.done` lines."""
        kinds = ("registered", "updated", "deregistered")
        return sum(int(r.get(k, 0)) for r in self.records("reconcile.done") for k in kinds)


class Fleet:
    """3 Consul servers, `hosts` client agents, nginx, and a registrator per host."""

    def __init__(
        self,
        workdir: Path,
        *,
        hosts: int,
        registrator_args: tuple[str, ...] = (),
        anti_entropy: str = "",
        run: str | None = None,
        agentless: bool = False,
        front: Callable[[int, str], str] | None = None,
    ) -> None:
        """`anti_entropy` shortens how often agents compare their services with the catalog:
        the one way a write an agent could not pass on during a leader election reaches it.
        `agentless` hosts run no client agent: each registrator writes the catalog through
        nginx (`consul-catalog://`), as host k's node at `host_address(k)`. `front(k, address)`
        is the address host k's registrator is given for the one it would talk to (a counting
        proxy's, say); the address itself by default."""
        self.workdir = workdir
        self.agentless = agentless
        self.name = "host"
        self.front = front or (lambda _k, address: address)
        self._hosts = hosts
        self.anti_entropy = anti_entropy
        self.run = run or uuid.uuid4().hex[:8]
        self.prefix = f"127.{random.randint(2, 254)}.{random.randint(0, 255)}"
        self.servers = [self._node(f"server-{i}", i, server=True) for i in range(1, SERVERS + 1)]
        self.clients = [
            self._node(self.host_name(k), 10 + k, server=False)
            for k in range(1, 0 if agentless else hosts + 1)
        ]
        self.nginx = Nginx(workdir / "nginx", self.servers[0].address, [])
        self.registrator_args = registrator_args
        self.registrators: list[HostRegistrator] = []

    @property
    def hosts(self) -> range:
        """Host numbers, 1-based: host k is `clients[k - 1]`, `registrators[k - 1]`."""
        return range(1, self._hosts + 1)

    def host_name(self, k: int) -> str:
        """Host k's identity (`--hostname`, its node's name): `host-k` unless renamed."""
        return f"{self.name}-{k}"

    def host_address(self, k: int) -> str:
        """Host k's address: its client agent's, or its catalog node's when agentless."""
        return f"{self.prefix}.{10 + k}"

    def _node(self, name: str, last: int, *, server: bool) -> ConsulNode:
        address = f"{self.prefix}.{last}"
        workdir = self.workdir / name
        return ConsulNode(name, address, workdir, server=server, anti_entropy=self.anti_entropy)

    def _registrator(self, k: int, extra: tuple[str, ...]) -> HostRegistrator:
        name = self.host_name(k)
        if self.agentless:
            args = [f"consul-catalog://{self.front(k, self.nginx.http)}", "--hostname", name]
            args += ["--ip", self.host_address(k)]
        else:
            args = [f"consul://{self.front(k, self.clients[k - 1].http)}", "--hostname", name]
        args += ["--require-label", f"{FLEET_LABEL}={self.label_value(k)}"]
        args += ["--log-format", "json", "--log-level", "DEBUG", *extra]
        log = self.workdir / f"registrator-{name}.log"
        return HostRegistrator(args, log, {"PYTHONUNBUFFERED": "1"}, host=name)

    def label_value(self, k: int) -> str:
        return f"{self.run}.{self.host_name(k)}"

    def labels(self, k: int) -> dict[str, str]:
        """The labels that put a container on host k."""
        return {FLEET_LABEL: self.label_value(k)}

    def client(self, k: int) -> ConsulNode:
        return self.clients[k - 1]

    def registrator(self, k: int) -> HostRegistrator:
        return self.registrators[k - 1]

    @property
    def nodes(self) -> tuple[ConsulNode, ...]:
        return (*self.servers, *self.clients)

    def start(self, *, registrators: bool = True) -> Fleet:
        """The cluster (all agents at once, then until every one is a member), nginx, and
        unless told otherwise the registrators."""
        count = len(PORT_NAMES) * len(self.nodes)
        start_on_free_ports(count, self._start_cluster, what="the fleet's Consul cluster")
        self.nginx.upstreams = [s.http for s in self.servers]
        self.nginx.start()
        self.registrators = [self._registrator(k, self.registrator_args) for k in self.hosts]
        if registrators:
            self.start_registrators()
        return self

    def _start_cluster(self, ports: list[int]) -> None:
        """Every agent on its share of `ports`; all stopped again when one could not bind."""
        width = len(PORT_NAMES)
        for n, node in enumerate(self.nodes):
            node.ports = dict(zip(PORT_NAMES, ports[n * width : (n + 1) * width], strict=True))
            node.started = False
        join = [s.serf for s in self.servers]
        for server in self.servers:
            server.join = [j for j in join if j != server.serf]
        for client in self.clients:
            client.join = join
        for node in self.nodes:
            node.start()
        try:
            self.wait_for_cluster()
        except AddressInUse:
            for node in self.nodes:
                node.kill()
            raise

    def go_agentless(self, name: str, registrator_args: tuple[str, ...]) -> None:
        """From here on the hosts run no client agent, on the same servers and nginx: their
        registrators and agents are stopped (the agents leave, and the servers drop their
        nodes), and catalog-mode registrators named `name-k` (not started) replace them. A new
        name, because a left agent's name stays a serf member the servers may reconcile."""
        with ThreadPoolExecutor(max(8, len(self.clients))) as pool:
            list(pool.map(HostRegistrator.stop, self.registrators))
            list(pool.map(ConsulNode.stop, self.clients))
        self.clients, self.agentless, self.name = [], True, name
        self.registrator_args = registrator_args
        self.registrators = [self._registrator(k, registrator_args) for k in self.hosts]

    def start_registrators(self) -> None:
        for registrator in self.registrators:
            registrator.start()

    def wait_for_cluster(self, *, timeout: float = 90) -> None:
        """Until there is a leader and every agent knows it and is in the catalog."""
        names = {n.name for n in (*self.servers, *self.clients) if n.alive}

        def ready() -> bool:
            for node in (*self.servers, *self.clients):
                if node.process is not None and node.process.poll() is not None:
                    raise exited(f"consul {node.name}", node.log_tail())
            if not all(n.leader() for n in (*self.servers, *self.clients) if n.alive):
                return False
            return names <= self.catalog_nodes() and self.voters() == sum(
                s.alive for s in self.servers
            )

        wait_until(ready, timeout=timeout, interval=0.2, what="the Consul cluster")

    def catalog_nodes(self) -> set[str]:
        try:
            return {n["Node"] for n in self.live_server().get("/v1/catalog/nodes")}
        except (OSError, urllib.error.URLError, ValueError):
            return set()

    def voters(self) -> int:
        """Healthy voting servers, as autopilot counts them (a rejoined one must stabilize)."""
        try:
            health = self.live_server().get("/v1/operator/autopilot/health")
        except (OSError, urllib.error.URLError, ValueError):
            return 0  # 429 while unhealthy
        return sum(1 for s in health["Servers"] if s["Voter"] and s["Healthy"])

    def live_server(self) -> ConsulNode:
        return next(s for s in self.servers if s.alive)

    def leader(self) -> ConsulNode | None:
        """The live server that leads now, as every live server says; None while there is none
        (followers name a dead leader until their election timeout)."""
        answers = {s.leader() for s in self.servers if s.alive}
        live = {f"{s.address}:{s.ports['server']}": s for s in self.servers if s.alive}
        return live.get(answers.pop()) if len(answers) == 1 else None

    def catalog(self, server: ConsulNode, service: str) -> list[dict[str, Any]]:
        """`service`'s instances in `server`'s own copy of the catalog (`?stale`: no forwarding)."""
        found: list[dict[str, Any]] = server.get(f"/v1/catalog/service/{service}?stale")
        return found

    def passing(self, server: ConsulNode, service: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = server.get(f"/v1/health/service/{service}?passing&stale")
        return found

    def catalog_writes(self) -> int:
        """Catalog writes applied so far, summed over the live servers."""
        return sum(s.catalog_writes() for s in self.servers if s.alive)

    def stop(self) -> None:
        """Everything, each kind at once (a client agent takes seconds to leave)."""
        with ThreadPoolExecutor(max(8, len(self.clients))) as pool:
            list(pool.map(HostRegistrator.stop, self.registrators))
            self.nginx.stop()
            list(pool.map(ConsulNode.stop, (*self.clients, *self.servers)))

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
