"""Helpers shared by the test suites: waiting on conditions, free ports, the real stack's parts."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_IMAGE = os.environ.get("REGISTRATOR_TEST_IMAGE", "registrator-test/busybox:latest")
TEST_LABEL = "org.registrator.test.session"

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float = 15,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: {last!r}")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 10) -> int:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; its exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on loopback (also free for UDP in practice)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def consul_binary() -> str:
    found = shutil.which("consul")
    if found:
        return found
    cached = ROOT / ".cache" / "consul" / "usr" / "bin" / "consul"
    if cached.exists():
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

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def uri(self) -> str:
        return f"consul://{self.address}"

    def start(self, *, http_port: int | None = None) -> ConsulDevAgent:
        http, dns, serf_lan, serf_wan, server = free_ports(5)
        self.http_port, self.dns_port = http_port or http, dns
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.json"
        config.write_text(json.dumps(self.extra_config))
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
        with (self.workdir / "consul.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, what=f"consul agent on {self.address}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.workdir / "consul.log").read_text()[-2000:]
            raise RuntimeError(f"consul agent exited: {log}")
        try:
            return bool(self.get("/v1/status/leader")) and self.get("/v1/agent/self") is not None
        except (OSError, urllib.error.URLError):
            return False

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


@dataclass
class RegistratorProcess:
    """The real `registrator` CLI as a user runs it, in a subprocess with its log in a file."""

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> RegistratorProcess:
        env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "registrator", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_for_log(self, text: str, *, timeout: float = 15) -> None:
        wait_until(lambda: text in self.log, timeout=timeout, what=f"{text!r} in registrator log")

    def stop(self, *, timeout: float = 10) -> int:
        if self.process is None:
            return 0
        code = stop_process(self.process, timeout=timeout)
        self.process = None
        return code


def prometheus_binary() -> str:
    """Debian 11's prometheus 2.24 (Debian 12's is built without Consul discovery)."""
    cached = ROOT / ".cache" / "prometheus" / "usr" / "bin" / "prometheus"
    if cached.exists():
        return str(cached)
    raise RuntimeError(
        "no prometheus binary: run scripts/stack.sh prometheus (the test command does)"
    )


@dataclass
class PrometheusServer:
    """A real Prometheus on a free loopback port, with `config` as its configuration file."""

    workdir: Path
    config: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        [self.port] = free_ports(1)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(self.config)
        args = [
            prometheus_binary(),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
        ]
        with (self.workdir / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, what=f"prometheus on port {self.port}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.workdir / "prometheus.log").read_text()[-2000:]
            raise RuntimeError(f"prometheus exited: {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self) -> str:
        return (self.workdir / "prometheus.log").read_text()[-3000:]

    def targets(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())["data"]
        return data

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None
