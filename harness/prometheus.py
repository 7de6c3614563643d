"""A real Prometheus on a free loopback port, for the recipes that discover services in Consul."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ports import exited, start_on_free_ports
from harness.processes import stop_process
from harness.stack import cached_binary
from harness.waits import wait_until


def prometheus_binary() -> str:
    """Debian 11's prometheus 2.24 (Debian 12's is built without Consul discovery)."""
    cached = cached_binary("prometheus")
    if cached is not None:
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
        return start_on_free_ports(1, self._start_on, what="prometheus")

    def _start_on(self, ports: list[int]) -> PrometheusServer:
        [self.port] = ports
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(self.config)
        args = [
            prometheus_binary(),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
        ]
        with (self.workdir / "prometheus.log").open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, what=f"prometheus on port {self.port}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            self.process = None
            raise exited("prometheus", (self.workdir / "prometheus.log").read_text())
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
