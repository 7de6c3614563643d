"""A real Consul dev agent of the caller's own: free loopback ports, its own data directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.ports import exited, free_port_range, start_on_free_ports, wait_released
from harness.processes import stop_process
from harness.stack import cached_binary
from harness.waits import wait_until


def consul_binary() -> str:
    found = shutil.which("consul")
    if found:
        return found
    cached = cached_binary("consul")
    if cached is not None:
        return str(cached)
    raise RuntimeError("no consul binary: run scripts/stack.sh consul (the test command does)")


@dataclass
class ConsulDevAgent:
    """A real `consul agent -dev` on free loopback ports with its own data directory."""

    workdir: Path
    extra_config: dict[str, Any] = field(default_factory=dict)
    http_port: int = 0
    dns_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    token: str | None = None
    _log_start: int = 0
    #: how many ports its sidecar range holds (0: Consul's own 21000-21255); the range, taken
    #: from the harness' ports on the first start, is kept across restarts
    sidecar_ports: int = 0
    sidecar_range: range | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def uri(self) -> str:
        return f"consul://{self.address}"

    def start(self, *, http_port: int | None = None) -> ConsulDevAgent:
        """Start on fresh ports, or with `http_port` on that HTTP port again (a restart: once
        the old process has released it)."""
        if http_port:
            wait_released("127.0.0.1", [http_port])
        return start_on_free_ports(
            5, lambda ports: self._start_on(ports, http_port), what="consul dev agent"
        )

    def _start_on(self, ports: list[int], http_port: int | None) -> ConsulDevAgent:
        http, dns, serf_lan, serf_wan, server = ports
        self.http_port, self.dns_port = http_port or http, dns
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.json"
        config.write_text(json.dumps({**self.extra_config, **self._sidecar_config()}))
        data = self.workdir / "data"
        shutil.rmtree(data, ignore_errors=True)
        args = [
            consul_binary(),
            "agent",
            "-dev",
            "-bind",
            "127.0.0.1",
            "-client",
            "127.0.0.1",
            "-node",
            f"registrator-test-{self.http_port}",
            "-data-dir",
            str(data),
            "-http-port",
            str(self.http_port),
            "-dns-port",
            str(dns),
            "-serf-lan-port",
            str(serf_lan),
            "-serf-wan-port",
            str(serf_wan),
            "-server-port",
            str(server),
            "-grpc-port",
            "-1",
            "-config-file",
            str(config),
        ]
        log_path = self.workdir / "consul.log"
        self._log_start = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, what=f"consul agent on {self.address}")
        return self

    def _sidecar_config(self) -> dict[str, Any]:
        if not self.sidecar_ports:
            return {}
        if self.sidecar_range is None:
            self.sidecar_range = free_port_range(self.sidecar_ports)
        span = self.sidecar_range
        return {"ports": {"sidecar_min_port": span.start, "sidecar_max_port": span.stop - 1}}

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            self.process = None
            raise exited("consul agent", self.log_since_start())
        try:
            return bool(self.get("/v1/status/leader")) and self.get("/v1/agent/self") is not None
        except (OSError, urllib.error.URLError):
            return False

    def log_since_start(self) -> str:
        """What the agent logged since its last start."""
        with (self.workdir / "consul.log").open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.address}{path}", data=data, method=method)
        if self.token:
            req.add_header("X-Consul-Token", self.token)
        with urllib.request.urlopen(req, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def services(self, *, owner: str | None = None) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = self.get("/v1/agent/services") or {}
        if owner is None:
            return found
        return {
            k: v for k, v in found.items() if (v.get("Meta") or {}).get("registrator_host") == owner
        }
