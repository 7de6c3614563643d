"""A real etcd for the tests: Debian's etcd-server (3.4), one member on free loopback ports.

Kept apart from `tests/support.py` so the registries' harness stands on its own. The server's
data directory is the test's own and is removed at `stop` (unless `keep_data`, for a restart).
Tests read and write etcd through its v3 JSON gateway, as registrator does.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import stop_process, wait_until
from harness.ports import exited, start_on_free_ports, wait_released


def etcd_binary() -> str:
    found = shutil.which("etcd")
    if found:
        return found
    raise RuntimeError("no etcd binary: run scripts/stack.sh etcd (the test command does)")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(data: Any) -> str:
    return base64.b64decode(str(data or "")).decode()


@dataclass
class EtcdServer:
    """`etcd` with its own data directory under `workdir`, on loopback only."""

    workdir: Path
    client_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log_start: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def uri(self, path: str = "/services", scheme: str = "etcd") -> str:
        return f"{scheme}://{self.address}{path}"

    def start(self, *, keep_data: bool = False) -> EtcdServer:
        """Start (or start again on the same client port, with `keep_data` its old data, once
        the old process has released the port)."""
        fixed = self.client_port
        if fixed:
            wait_released("127.0.0.1", [fixed])
        start = lambda ports: self._start_on(ports, fixed=fixed, keep_data=keep_data)  # noqa: E731
        return start_on_free_ports(3, start, what="etcd")

    def _start_on(self, ports: list[int], *, fixed: int, keep_data: bool) -> EtcdServer:
        client, peer, metrics = ports
        self.client_port = fixed or client
        data = self.workdir / "data"
        if not keep_data:
            shutil.rmtree(data, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        peer_url = f"http://127.0.0.1:{peer}"
        args = [
            etcd_binary(),
            "--name=registrator-test",
            f"--data-dir={data}",
            f"--listen-client-urls=http://{self.address}",
            f"--advertise-client-urls=http://{self.address}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=registrator-test={peer_url}",
            f"--listen-metrics-urls=http://127.0.0.1:{metrics}",
            "--log-outputs=stderr",
        ]
        log_path = self.workdir / "etcd.log"
        self._log_start = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, what=f"etcd on {self.address}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            self.process = None
            with (self.workdir / "etcd.log").open("rb") as log:
                log.seek(self._log_start)
                raise exited("etcd", log.read().decode(errors="replace"))
        try:
            self.revision()
        except (OSError, urllib.error.URLError):
            return False
        return True

    def stop(self, *, keep_data: bool = False) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None
        if not keep_data:
            shutil.rmtree(self.workdir / "data", ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL: etcd gets no chance to do anything on the way out."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def call(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"http://{self.address}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def revision(self) -> int:
        """The store's revision: it moves with every write, and only then."""
        data = self.call("/v3/kv/range", {"key": _b64("\0")})
        return int(data["header"]["revision"])

    def keys(self, prefix: str = "/") -> dict[str, dict[str, Any]]:
        """key -> {"value": str, "lease": int} for every key starting with `prefix`."""
        raw = prefix.encode()
        end = base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()
        data = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": end})
        return {
            _text(kv["key"]): {"value": _text(kv.get("value")), "lease": int(kv.get("lease", 0))}
            for kv in data.get("kvs") or ()
        }

    def put(self, key: str, value: str, *, lease: int = 0) -> None:
        self.call("/v3/kv/put", {"key": _b64(key), "value": _b64(value), "lease": lease})

    def grant(self, ttl: int) -> int:
        return int(self.call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def time_to_live(self, lease: int) -> int:
        return int(self.call("/v3/lease/timetolive", {"ID": lease}).get("TTL", -1))
