"""The results of one run as Markdown: the subjects side by side, the ratios, the floor.

The targets compare registrator with the first peer of the same run (ratios, because the
machines are shared and noisy) and with the floor measured in that run; without a peer only
the absolute targets are judged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.floor import Floor
from benchmarks.process import Footprint
from benchmarks.scenarios import Burst, Idle, ProxyOverhead, Sequential, StartUp
from benchmarks.stats import Summary, percentile

#: peak RSS allowed at up to this many containers (issue 11)
RSS_LIMITS_MB = ((100, 40.0), (500, 60.0))
START_UP_LIMIT_S = 2.0
#: an idle resync is O(1) requests: this many at most per interval, whatever the number of
#: containers. With `--resync-interval 2` and the agent check every 3 s: a resync asks
#: /v1/agent/self for the address and twice for the node (see NodeWatch), then services and
#: checks (5); an agent check, the node twice, services and checks (4, 2/3 of one per interval)
IDLE_REQUESTS = 8


@dataclass
class SubjectResults:
    name: str
    start_up: StartUp
    sequential: Sequential
    burst_removal: Burst
    burst_start: Burst
    idle: Idle
    #: exactly the running ones once the idle time is over, and what differs if not
    exact_at_end: tuple[bool, str]
    footprint: Footprint
    #: one-minute load average when the subject started and when it stopped
    load: tuple[float, float]

    @property
    def registration(self) -> Summary:
        return Summary.of(self.sequential.register_ms)

    @property
    def deregistration(self) -> Summary:
        return Summary.of(self.sequential.deregister_ms)

    @property
    def exact(self) -> bool:
        return self.burst_start.exact and self.burst_removal.exact and self.exact_at_end[0]


@dataclass
class Results:
    n: int
    running: int
    resync: float
    floor: Floor
    overhead: ProxyOverhead
    subjects: list[SubjectResults]
    machine: str = ""


def merge(rounds: list[SubjectResults]) -> SubjectResults:
    """One subject's rounds as one: latency samples pooled, the median burst, start-up and
    CPU, the largest RSS, exact only if every round was."""
    first = rounds[0]
    if len(rounds) == 1:
        return first

    def middle(values: list[float]) -> float:
        return percentile(values, 50)

    def burst(pick: Callable[[SubjectResults], Burst]) -> Burst:
        bursts = [pick(r) for r in rounds]
        wrong = [b.detail for b in bursts if not b.exact]
        ms = middle([b.ms for b in bursts])
        return Burst(first.burst_start.containers, ms, not wrong, "; ".join(wrong))

    return SubjectResults(
        name=first.name,
        start_up=StartUp(first.start_up.containers, middle([r.start_up.seconds for r in rounds])),
        sequential=Sequential(
            [x for r in rounds for x in r.sequential.register_ms],
            [x for r in rounds for x in r.sequential.deregister_ms],
        ),
        burst_removal=burst(lambda r: r.burst_removal),
        burst_start=burst(lambda r: r.burst_start),
        idle=Idle(
            sum(r.idle.seconds for r in rounds),
            first.idle.interval,
            sum(r.idle.requests for r in rounds),
            sum(r.idle.writes for r in rounds),
            {},
        ),
        exact_at_end=(
            all(r.exact_at_end[0] for r in rounds),
            "; ".join(r.exact_at_end[1] for r in rounds if not r.exact_at_end[0]),
        ),
        footprint=Footprint(
            max(r.footprint.peak_rss_mb for r in rounds),
            middle([r.footprint.cpu_seconds for r in rounds]),
        ),
        load=(first.load[0], rounds[-1].load[1]),
    )


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "no peer"
    return "met" if ok else "**missed**"


def ratio(mine: float, theirs: float) -> str:
    if not theirs or math.isnan(theirs) or math.isnan(mine):
        return ""
    return f"{mine / theirs:.2f}x"


def rss_limit(containers: int) -> float | None:
    return next((mb for up_to, mb in RSS_LIMITS_MB if containers <= up_to), None)


def _latency(s: Summary) -> str:
    return f"{s.p50:.1f} / {s.p90:.1f} / {s.p99:.1f}"


def _burst(b: Burst) -> str:
    return f"{b.ms:.0f}" + ("" if b.exact else f" (WRONG SET: {b.detail})")


def _exact(r: SubjectResults) -> str:
    if r.exact:
        return "yes"
    wrong = [b.detail for b in (r.burst_start, r.burst_removal) if not b.exact]
    return "NO: " + "; ".join([*wrong, *([r.exact_at_end[1]] if not r.exact_at_end[0] else [])])


Row = tuple[str, list[str], str, str, str]


class _Rows:
    """The table's rows: a figure, each subject's value, the ratio, the target, the verdict."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.mine = results.subjects[0]
        self.peer = results.subjects[1] if len(results.subjects) > 1 else None
        self.rows: list[Row] = []

    def add(
        self,
        figure: str,
        value: Callable[[SubjectResults], str],
        number: Callable[[SubjectResults], float] | None = None,
        target: str = "",
        ok: Callable[[SubjectResults, SubjectResults | None], bool | None] | None = None,
    ) -> None:
        values = [value(s) for s in self.results.subjects]
        shown = ratio(number(self.mine), number(self.peer)) if number and self.peer else ""
        judged = verdict(ok(self.mine, self.peer)) if ok else ""
        self.rows.append((figure, values, shown, target, judged))


def _vs_peer(
    check: Callable[[SubjectResults, SubjectResults], bool],
) -> Callable[[SubjectResults, SubjectResults | None], bool | None]:
    return lambda mine, peer: None if peer is None else check(mine, peer)


def _latency_row(
    t: _Rows, figure: str, of: Callable[[SubjectResults], Summary], floor_ms: float
) -> None:
    """A latency row: p50 ≤ the peer's and ≤ 3 x the floor, p99 ≤ 4 x p50."""
    t.add(
        f"{figure}, p50 / p90 / p99 ms",
        lambda s: _latency(of(s)),
        lambda s: of(s).p50,
        f"p50 ≤ peer's and ≤ 3 x floor ({3 * floor_ms:.1f} ms); p99 ≤ 4 x p50",
        lambda m, p: (
            of(m).p50 <= 3 * floor_ms
            and of(m).p99 <= 4 * of(m).p50
            and (p is None or of(m).p50 <= of(p).p50)
        ),
    )


def rows(results: Results) -> list[Row]:
    f, t = results.floor, _Rows(results)
    registration = "registration: `start` → agent answered the register"
    _latency_row(t, registration, lambda s: s.registration, f.registration_ms)
    deregistration = "deregistration: `die` → agent answered the deregister"
    _latency_row(t, deregistration, lambda s: s.deregistration, f.deregister_ms)
    _burst_rows(t, results.n)
    _footprint_rows(t, results.running, results.n)
    return t.rows


def _burst_rows(t: _Rows, n: int) -> None:
    t.add(
        f"burst of {n}: last `start` → all registered, ms",
        lambda s: _burst(s.burst_start),
        lambda s: s.burst_start.ms,
        "≤ peer's",
        _vs_peer(lambda m, p: m.burst_start.ms <= p.burst_start.ms),
    )
    t.add(
        f"burst of {n}: last `die` → none left, ms",
        lambda s: _burst(s.burst_removal),
        lambda s: s.burst_removal.ms,
        "≤ peer's",
        _vs_peer(lambda m, p: m.burst_removal.ms <= p.burst_removal.ms),
    )
    t.add(
        "exactly the running ones remain (after each burst, and after the idle time)",
        _exact,
        target="yes",
        ok=lambda m, _: m.exact,
    )


def _footprint_rows(t: _Rows, running: int, n: int) -> None:
    t.add(
        f"start-up with {running} running: process start → all registered, s",
        lambda s: f"{s.start_up.seconds:.2f}",
        lambda s: s.start_up.seconds,
        f"≤ {START_UP_LIMIT_S:g} s",
        lambda m, _: m.start_up.seconds <= START_UP_LIMIT_S,
    )
    t.add(
        "idle: requests / writes to the agent per resync interval (this run's containers)",
        lambda s: f"{s.idle.requests_per_interval:.1f} / {s.idle.writes_per_interval:.1f}",
        target=f"O(1) (≤ {IDLE_REQUESTS}) / 0",
        ok=lambda m, _: m.idle.writes == 0 and m.idle.requests_per_interval <= IDLE_REQUESTS,
    )
    t.add(
        "CPU seconds over the run",
        lambda s: f"{s.footprint.cpu_seconds:.2f}",
        lambda s: s.footprint.cpu_seconds,
        "≤ 1.5 x peer's",
        _vs_peer(lambda m, p: m.footprint.cpu_seconds <= 1.5 * p.footprint.cpu_seconds),
    )
    limit = rss_limit(n)
    t.add(
        "peak RSS, MB",
        lambda s: f"{s.footprint.peak_rss_mb:.1f}",
        lambda s: s.footprint.peak_rss_mb,
        f"≤ {limit:g} MB" if limit else "",
        (lambda m, _: m.footprint.peak_rss_mb <= limit) if limit else None,
    )
    t.add("load average (1 min) at its start → end", lambda s: f"{s.load[0]:.1f} → {s.load[1]:.1f}")


def floor_lines(f: Floor, overhead: ProxyOverhead) -> list[str]:
    return [
        f"| floor: raw calls, no registrator (median of {f.samples}) | ms |",
        "|---|---|",
        f"| Docker event delivery: `timeNano` → a raw subscriber has it | {f.delivery_ms:.2f} |",
        f"| inspect (Docker's unix socket, kept alive) | {f.inspect_ms:.2f} |",
        f"| register PUT, direct / through the proxy | {f.register_ms:.2f} / "
        f"{f.register_proxied_ms:.2f} |",
        f"| deregister PUT, direct / through the proxy | {f.deregister_ms:.2f} / "
        f"{f.deregister_proxied_ms:.2f} |",
        f"| registration floor: inspect + register PUT | {f.registration_ms:.2f} |",
        f"| a GET, direct / through the proxy | {overhead.direct_ms:.2f} / "
        f"{overhead.proxied_ms:.2f} |",
    ]


def table(results: Results) -> str:
    names = [s.name for s in results.subjects]
    peer = names[1] if len(names) > 1 else ""
    head = ["figure", *names, f"{names[0]} / {peer}" if peer else "ratio", "target", ""]
    lines = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    for figure, values, shown, target, judged in rows(results):
        lines.append(f"| {' | '.join([figure, *values, shown, target, judged])} |")
    lines.append("")
    lines += floor_lines(results.floor, results.overhead)
    lines.append("")
    lines.append(
        f"{results.running} containers running at start-up, bursts of {results.n}, "
        f"{len(results.subjects[0].sequential.register_ms)} sequential, "
        f"--resync-interval {results.resync:g}. Machine: {results.machine}."
    )
    return "\n".join(lines)
