"""The registrator process under test: its JSON log, and its footprint from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.docker_side import Interrupted
from harness import RegistratorProcess, wait_until

FULL = "full"


@dataclass(frozen=True, slots=True)
class Footprint:
    """Peak resident memory and CPU time of a process so far."""

    peak_rss_mb: float
    cpu_seconds: float


def footprint(pid: int) -> Footprint:
    """From /proc: VmHWM (the kernel's peak RSS) and utime + stime."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    # fields after the command name, which is in parentheses and may contain spaces
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(stat[11]) + int(stat[12])  # utime, stime: fields 14 and 15 of the whole line
    return Footprint(hwm_kb / 1024, ticks / os.sysconf("SC_CLK_TCK"))


def log_records(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of `text` (anything else, e.g. a traceback, is skipped)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def quiet_resyncs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Full reconciles after the first with no Docker event since the reconcile before them."""
    quiet, heard = [], True  # the first full reconcile is the start-up: it does all the work
    for record in records:
        if record.get("event") == "docker.event":
            heard = True
        elif record.get("event") == "reconcile.done":
            if record.get("scope") == FULL and not heard:
                quiet.append(record)
            heard = False
    return quiet


def record_time(record: dict[str, Any]) -> float:
    """A log record's wall-clock time in seconds since the epoch."""
    return datetime.fromisoformat(str(record["time"])).timestamp()


class Registrator:
    """The real CLI as a user runs it, with JSON logs at DEBUG so reconciles can be timed."""

    def __init__(
        self,
        uri: str,
        *,
        identity: str,
        log_path: Path,
        resync: float = 0,
        profile: Path | None = None,
    ) -> None:
        args = [uri, "--hostname", identity, "--log-format", "json", "--log-level", "DEBUG"]
        if resync:
            args += ["--resync-interval", str(resync)]
        self._process = RegistratorProcess(args, log_path)
        self._profile = profile
        self._profiler: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> Registrator:
        self._process.log_path.unlink(missing_ok=True)
        self.started_at = time.time()
        self._process.start()
        if self._profile is not None:
            self._profiler = _sample(self.pid, self._profile)
        return self

    @property
    def pid(self) -> int:
        assert self._process.process is not None
        return self._process.process.pid

    def records(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in log_records(self._process.log)
            if (event is None or r.get("event") == event)
            and all(r.get(k) == v for k, v in fields.items())
        ]

    def reconciles(self, scope: str = FULL) -> list[dict[str, Any]]:
        return self.records("reconcile.done", scope=scope)

    def wait_for_reconciles(self, count: int, *, timeout: float = 60) -> list[dict[str, Any]]:
        """The first `count` full reconciles, waiting for them."""

        def enough() -> list[dict[str, Any]] | None:
            self.check_alive()
            done = self.reconciles()
            return done[:count] if len(done) >= count else None

        return wait_until(enough, timeout=timeout, interval=0.01, what=f"{count} full reconciles")

    def footprint(self) -> Footprint:
        return footprint(self.pid)

    def stop(self) -> int:
        code = self._process.stop()
        if self._profiler is not None:
            self._profiler.wait(timeout=60)  # py-spy writes its file once the process is gone
        return code

    def check_alive(self) -> None:
        process = self._process.process
        if process is not None and process.poll() is not None:
            raise Interrupted(
                f"registrator exited {process.returncode}: {self._process.log[-2000:]}"
            )


def _sample(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` without pausing it; collapsed stacks, one line per stack, in `out`."""
    py_spy = Path(sys.executable).with_name("py-spy")
    args = [str(py_spy), "record", "--pid", str(pid), "--rate", "500", "--nonblocking"]
    args += ["--format", "raw", "--output", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
