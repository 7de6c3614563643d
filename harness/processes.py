"""The registrator CLI as a long-running process, and what every process started here needs."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from harness.stack import ROOT
from harness.waits import wait_until

#: the command line that runs this checkout's registrator, as `python -m registrator`
CLI = (sys.executable, "-m", "registrator")


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


#: Ports the harness hands out: below Linux's ephemeral range (32768-60999), from which both
#: outgoing connections and Docker's published ports are allocated, so a process restarted on
#: its old port (an agent, a Consul server) never finds it taken by one of those meanwhile.
PORTS = range(20000, 32768)


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports of PORTS, free on loopback for TCP and UDP right now."""
    with ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            port = random.choice(PORTS)
            if port in ports:
                continue
            try:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = stack.enter_context(socket.socket(socket.AF_INET, kind))
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
        return ports


def free_port_range(count: int) -> range:
    """`count` consecutive ports of PORTS, each free on loopback right now (a range a process
    allocates from itself, as a Consul agent its sidecar ports)."""
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


@dataclass
class RegistratorProcess:
    """The real `registrator` CLI as a user runs it, in a subprocess with its log in a file.

    `env` is merged into this process' environment (`DOCKER_HOST`, `CONSUL_HTTP_TOKEN`, ...).
    """

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*CLI, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
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
