"""A process under test: its footprint from /proc, and registrator's JSON log."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

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


#: an engine event handed to a lane, as this registrator logs it (and as 0.1 did, for --peer)
ENGINE_EVENTS = frozenset({"engine.event", "docker.event"})


def quiet_resyncs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Full reconciles after the first with no Docker event since the reconcile before them."""
    quiet, heard = [], True  # the first full reconcile is the start-up: it does all the work
    for record in records:
        if record.get("event") in ENGINE_EVENTS:
            heard = True
        elif record.get("event") == "reconcile.done":
            if record.get("scope") == FULL and not heard:
                quiet.append(record)
            heard = False
    return quiet


def record_time(record: dict[str, Any]) -> float:
    """A log record's wall-clock time in seconds since the epoch."""
    return datetime.fromisoformat(str(record["time"])).timestamp()
