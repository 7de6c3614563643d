"""A `SERVICE_CHECK_TTL` check in catalog mode: what an application's report means. Pure.

With an agent, the application reports to the agent (`PUT /v1/agent/check/pass/<check-id>`
and the rest of that API) and the agent runs the TTL. In catalog mode there is no agent, so
registrator answers those same requests (`app/check_reports.py`) and runs the TTL itself
(`runtime/probes.py`); this module holds what that means, with the time passed in:

- `report_of` reads one request (`pass`, `warn`, `fail` with `?note=`, or `update` with
  `{"Status": ..., "Output": ...}`) into a `Report`, or raises `BadReport` saying why not;
- `Ttl` is the check's state: each report restarts its TTL; a new status is written at once,
  with the report's output; an output that alone changed is written at most once per
  `OUTPUT_EVERY` (Consul's `check_update_interval`: an application that puts a timestamp in
  its note must not cost one catalog write per report; the last one held back is written
  when that time has passed); a TTL that runs out with no report
  makes the check critical once, with an output saying so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from registrator.core.health import Probe, Threshold

#: the statuses a report may set (Consul's own)
STATUSES = ("passing", "warning", "critical")
#: the verbs of Consul's agent API for a TTL check, and the status each sets
VERBS = {"pass": "passing", "warn": "warning", "fail": "critical"}
#: seconds an output that alone changed waits before it is written (Consul's default)
OUTPUT_EVERY = 300.0
#: what of an output is kept (Consul's default `check_output_max_size`)
MAX_OUTPUT = 4096


class BadReport(ValueError):
    """A report that cannot be read: its message names the value."""


@dataclass(frozen=True, slots=True)
class Report:
    """One application's report on its TTL check."""

    status: str
    output: str


def report_of(verb: str, *, note: str = "", body: bytes = b"") -> Report:
    """The report a `PUT /v1/agent/check/<verb>/<check-id>` request makes."""
    if verb in VERBS:
        return Report(VERBS[verb], note[:MAX_OUTPUT])
    if verb != "update":
        raise BadReport(f"unknown verb {verb!r} (pass, warn, fail or update)")
    try:
        decoded = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise BadReport(f"body is not JSON: {body[:80]!r}") from e
    if not isinstance(decoded, dict):
        raise BadReport(f"body is not a JSON object: {body[:80]!r}")
    status, output = decoded.get("Status"), decoded.get("Output", "")
    if status not in STATUSES:
        raise BadReport(f"invalid check status {status!r} (passing, warning or critical)")
    if not isinstance(output, str):
        raise BadReport(f"Output is not a string: {output!r}")
    return Report(str(status), output[:MAX_OUTPUT])


def expired_output(probe: Probe) -> str:
    return f"TTL expired: no report within {probe.interval:g}s"


@dataclass(slots=True)
class Ttl(Threshold):
    """A TTL check's status (its `interval` is the TTL), and when it runs out."""

    #: when the TTL runs out (the caller's clock); None once it did, until the next report
    deadline: float | None = None
    #: when the output was last made the one to write
    output_since: float = 0.0
    #: an output that alone changed within `OUTPUT_EVERY`: written once that has passed
    held: str | None = None

    def report(self, probe: Probe, report: Report, *, now: float) -> bool:
        """One report; True when the status or output to write changed."""
        self.deadline = now + probe.interval
        if report.status == self.status and report.output == self.output:
            self.held = None
            return False
        if report.status == self.status and now - self.output_since < OUTPUT_EVERY:
            self.held = report.output
            return False
        if report.status != self.status:
            self.critical_since = now if report.status == "critical" else None
        self.status, self.output, self.output_since = report.status, report.output, now
        self.held = None
        return True

    def flush(self, *, now: float) -> bool:
        """The held output, once `OUTPUT_EVERY` has passed: True when it became the one to
        write (the last report's, as Consul's agent writes a deferred output)."""
        if self.held is None or now < self.output_since + OUTPUT_EVERY:
            return False
        self.output, self.output_since, self.held = self.held, now, None
        return True

    def lapse(self, probe: Probe, *, now: float) -> bool:
        """The TTL looked at, at `now`: True when it ran out and that changed what to write."""
        if self.deadline is None or now < self.deadline:
            return False
        self.deadline, self.held = None, None
        expired = expired_output(probe)
        if (self.status, self.output) == ("critical", expired):
            return False
        if self.status != "critical":
            self.critical_since = now
        self.status, self.output, self.output_since = "critical", expired, now
        return True

    def due(self, probe: Probe) -> float:
        """When to look again: the TTL's end or a held output's (the first), else the end of
        `deregister_after`, else never."""
        flush = math.inf if self.held is None else self.output_since + OUTPUT_EVERY
        if self.deadline is not None:
            return min(self.deadline, flush)
        if probe.deregister_after and self.critical_since is not None:
            return self.critical_since + probe.deregister_after
        return math.inf


def started(probe: Probe, status: str, output: str, *, now: float) -> Ttl:
    """A TTL check first seen: the status it holds (or starts with), its TTL from `now`."""
    since = now if status == "critical" else None
    return Ttl(
        status, output, critical_since=since, deadline=now + probe.interval, output_since=now
    )
