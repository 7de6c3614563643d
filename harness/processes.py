"""The registrator CLI as a long-running process, and what every process started here needs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


#: the port in a `status.listening` line, as text (`port=N`) or JSON (`"port": N`) logs it
_LISTENING = re.compile(r'status\.listening.*?\bport"?[=:] ?(\d+)')


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

    def listening_port(self, *, timeout: float = 15) -> int:
        """The port of its status server, from its `status.listening` line (for
        `--metrics-addr 127.0.0.1:0`, which lets the system pick a free one)."""
        found = wait_until(
            lambda: _LISTENING.search(self.log), timeout=timeout, what="status.listening"
        )
        return int(found.group(1))

    def stop(self, *, timeout: float = 10) -> int:
        if self.process is None:
            return 0
        code = stop_process(self.process, timeout=timeout)
        self.process = None
        return code
