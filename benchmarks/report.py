"""The results of one run as a Markdown table, each figure beside its target."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.process import Footprint
from benchmarks.scenarios import Burst, ProxyOverhead, Resync, Sequential, StartUp
from benchmarks.stats import Summary, mean, percentile

Row = tuple[str, str, str, str]


@dataclass
class Results:
    n: int
    start_up: StartUp
    sequential: Sequential
    burst_removal: Burst
    burst_start: Burst
    #: (which process, its footprint)
    footprints: tuple[tuple[str, Footprint], ...]
    resync_start_up: StartUp
    resync: Resync
    overhead: ProxyOverhead
    machine: str = ""


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def latency_rows(seq: Sequential) -> list[Row]:
    reg, dereg = Summary.of(seq.register_ms), Summary.of(seq.deregister_ms)
    return [
        (
            "registration: `start` → in /v1/agent/services (1 ms poll), p50 / p90 / p99",
            reg.text(),
            "p50 ≤ 10, p99 ≤ 50 ms",
            verdict(reg.p50 <= 10 and reg.p99 <= 50),
        ),
        (
            "deregistration: `die` → gone from /v1/agent/services (1 ms poll), p50 / p90 / p99",
            dereg.text(),
            "p50 ≤ 10 ms",
            verdict(dereg.p50 <= 10),
        ),
    ]


def burst_rows(up: Burst, down: Burst) -> list[Row]:
    def check(b: Burst) -> str:
        return "exactly the running ones remain" if b.exact else f"WRONG SET: {b.detail}"

    return [
        (
            f"burst of {up.containers}: last `start` → all registered",
            f"{up.ms:.0f} ms; {check(up)}",
            "≤ 100 ms at 100",
            verdict(up.ms <= 100 and up.exact),
        ),
        (
            f"burst of {down.containers}: last `die` → none left",
            f"{down.ms:.0f} ms; {check(down)}",
            "≤ 100 ms at 100",
            verdict(down.ms <= 100 and down.exact),
        ),
    ]


def resync_rows(r: Resync) -> list[Row]:
    routes = ", ".join(f"{k} {v:g}" for k, v in sorted(r.routes.items()))
    return [
        (
            f"resync, nothing changed, {r.containers} running: requests / writes to Consul",
            f"{mean(r.requests):g} / {mean(r.writes):g} per resync ({routes})",
            "O(1) / 0",
            # the agent's address, its node name asked twice (see NodeWatch), services, checks
            verdict(max(r.writes) == 0 and percentile(r.requests, 50) <= 5),
        ),
        (
            "  containers inspected per resync",
            f"{mean(r.inspected):g}",
            "0: none is new",
            verdict(percentile(r.inspected, 50) == 0),
        ),
        (
            "  wall / CPU time of one resync (median)",
            f"{percentile(r.wall_ms, 50):.1f} / {percentile(r.cpu_ms, 50):.1f} ms "
            f"(n={r.resyncs}; {r.disturbed} left out: others' containers changed meanwhile)",
            "",
            "",
        ),
    ]


def start_up_rows(s: StartUp, label: str) -> list[Row]:
    return [
        (
            f"start-up with {s.containers} running ({label}): process start → first full "
            "reconcile done",
            f"{s.seconds:.2f} s (imports and set-up {s.to_started_log:.2f} s, "
            f"reconcile {s.reconcile_ms:.0f} ms)"
            + ("" if s.registered_all else "; NOT ALL REGISTERED"),
            "≤ 2 s at 200",
            verdict(s.seconds <= 2 and s.registered_all),
        )
    ]


def footprint_rows(f: Footprint, label: str) -> list[Row]:
    return [
        (
            f"footprint of the process for {label}: peak RSS / CPU seconds",
            f"{f.peak_rss_mb:.1f} MB / {f.cpu_seconds:.2f} s",
            "≤ 60 MB at 200",
            verdict(f.peak_rss_mb <= 60),
        )
    ]


def table(results: Results) -> str:
    r = results
    rows: list[Row] = [
        *start_up_rows(r.start_up, "registers all"),
        *latency_rows(r.sequential),
        *burst_rows(r.burst_start, r.burst_removal),
        *start_up_rows(r.resync_start_up, "all already registered"),
        *resync_rows(r.resync),
        *(row for label, f in r.footprints for row in footprint_rows(f, label)),
    ]
    lines = ["| measure | value | target | |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines.append("")
    lines.append(
        f"N = {r.n}. Proxy overhead per request (median GET): direct "
        f"{r.overhead.direct_ms:.2f} ms, through the proxy {r.overhead.proxied_ms:.2f} ms. "
        f"Machine: {r.machine}."
    )
    return "\n".join(lines)
