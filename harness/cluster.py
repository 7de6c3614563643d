"""The Consul agents of a fleet (harness/fleet.py): servers and client agents, each on a
loopback address of its own with free ports, its own data directory and log."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import consul_binary
from harness.ports import wait_released

SERVERS = 3
#: Consul's telemetry for the writes a server applies to its catalog (on the leader)
CATALOG_WRITES = ("consul_catalog_register_count", "consul_catalog_deregister_count")


def stop_with(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> int:
    """Send `sig`, wait up to 10 s, then SIGKILL; the exit status (0 when never started)."""
    if process is None:
        return 0
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def http_get(address: str, path: str, *, timeout: float = 10) -> Any:
    """GET http://ADDRESS/PATH as JSON (None for an empty body)."""
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip() else None


def http_put(address: str, path: str) -> None:
    request = urllib.request.Request(f"http://{address}{path}", method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass


#: the ports each agent listens on, `ConsulNode.ports`' keys
PORT_NAMES = ("http", "dns", "serf_lan", "serf_wan", "server")


@dataclass
class ConsulNode:
    """One Consul agent of the cluster, server or client, on an address of its own."""

    name: str
    address: str
    workdir: Path
    server: bool
    join: list[str] = field(default_factory=list)
    node_id: str = ""
    #: Consul's anti-entropy interval (`ae_interval`, 1 min by default), "" for the default
    anti_entropy: str = ""
    #: `PORT_NAMES` -> port, given by the fleet before the first start
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started: bool = False

    def __post_init__(self) -> None:
        # The same node ID across restarts, as a host keeps its own: a node that comes back
        # empty under its old name with a new ID would have to wait for the old one to be reaped.
        self.node_id = self.node_id or str(uuid.uuid4())

    @property
    def http(self) -> str:
        return f"{self.address}:{self.ports['http']}"

    @property
    def serf(self) -> str:
        return f"{self.address}:{self.ports['serf_lan']}"

    @property
    def dns(self) -> tuple[str, int]:
        return self.address, self.ports["dns"]

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "node_name": self.name,
            "node_id": self.node_id,
            "datacenter": "dc1",
            "data_dir": str(self.workdir / "data"),
            "bind_addr": self.address,
            "client_addr": self.address,
            "ports": {**self.ports, "grpc": -1},
            "retry_join": self.join,
            "retry_interval": "1s",
            "disable_update_check": True,
            "log_level": "INFO",
            "telemetry": {"disable_hostname": True, "prometheus_retention_time": "1h"},
            "performance": {"raft_multiplier": 1},
        }
        if self.anti_entropy:
            config["ae_interval"] = self.anti_entropy
        if self.server:
            # a server that rejoins votes again after 2 s of health (Consul's default: 10 s)
            autopilot = {"server_stabilization_time": "2s"}
            config.update(server=True, bootstrap_expect=SERVERS, autopilot=autopilot)
        return config

    def start(self, *, empty: bool = False) -> ConsulNode:
        """Start the agent; `empty` wipes its data directory first (a host rebuilt). Started
        again, it waits until its last process has released its ports."""
        if self.started:
            wait_released(self.address, list(self.ports.values()))
        self.started = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        if empty:
            shutil.rmtree(self.workdir / "data", ignore_errors=True)
        config = self.workdir / "config.json"
        config.write_text(json.dumps(self.config(), indent=2))
        args = [consul_binary(), "agent", "-config-file", str(config)]
        with (self.workdir / "consul.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        """SIGKILL: the host dies without leaving the cluster (serfHealth turns critical)."""
        stop_with(self.process, signal.SIGKILL)
        self.process = None

    def stop(self) -> None:
        stop_with(self.process)
        self.process = None

    def get(self, path: str) -> Any:
        return http_get(self.http, path)

    def services(self) -> dict[str, Any]:
        """This agent's own services by ID (`/v1/agent/services`); none while it is down."""
        try:
            found: dict[str, Any] = self.get("/v1/agent/services") or {}
        except (OSError, urllib.error.URLError, ValueError):
            return {}
        return found

    def answers(self) -> bool:
        """Its HTTP API answers (before it has joined the cluster, too)."""
        try:
            return self.get("/v1/agent/self") is not None
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def leader(self) -> str:
        """The leader's server RPC address as this agent knows it ("" when none, or down)."""
        try:
            return str(self.get("/v1/status/leader") or "")
        except (OSError, urllib.error.URLError, ValueError):
            return ""

    def catalog_writes(self) -> int:
        """Catalog registrations and deregistrations this server applied, from its telemetry."""
        with urllib.request.urlopen(
            f"http://{self.http}/v1/agent/metrics?format=prometheus", timeout=10
        ) as response:
            text = response.read().decode()
        return sum(
            int(float(line.split()[-1]))
            for line in text.splitlines()
            if line.split(" ")[0] in CATALOG_WRITES
        )

    def log_tail(self, chars: int = 3000) -> str:
        path = self.workdir / "consul.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""
