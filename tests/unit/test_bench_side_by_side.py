"""The benchmark's side-by-side parts: peer commands, matching services to containers, the
ratios and verdicts of the table, and the profile summary."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks.floor import Floor
from benchmarks.process import Footprint
from benchmarks.profile import frame_name, shares
from benchmarks.report import Results, SubjectResults, merge, ratio, rows, table
from benchmarks.scenarios import Burst, Idle, ProxyOverhead, Sequential, StartUp, container_name_of
from benchmarks.subjects import parse_peer, registrator_subject


def test_a_peer_is_a_named_command_with_placeholders() -> None:
    peer = parse_peer(
        "gl=./wrap --hostname {hostname} --resync-interval {resync} consul://{consul}"
    )

    argv = peer.argv(consul="127.0.0.1:8500", hostname="bench-x", resync=2.0)

    assert peer.name == "gl"
    assert argv == [
        "./wrap",
        "--hostname",
        "bench-x",
        "--resync-interval",
        "2",
        "consul://127.0.0.1:8500",
    ]
    assert not peer.python


def test_a_peer_run_by_python_is_sampled_like_registrator(tmp_path: Path) -> None:
    script = tmp_path / "registrator"
    script.write_text("#!/opt/venv/bin/python3\nimport sys\n")
    binary = tmp_path / "gliderlabs"
    binary.write_bytes(b"\x7fELF\x02\x01")

    assert parse_peer(f"py={script} consul://{{consul}}").python
    assert parse_peer("py=python3.11 -m registrator consul://{consul}").python
    assert not parse_peer(f"go={binary} consul://{{consul}}").python
    assert not parse_peer(f"gone={tmp_path}/missing consul://{{consul}}").python


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no-equals", "NAME=COMMAND"),
        ("=cmd consul://{consul}", "NAME=COMMAND"),
        ("registrator=x consul://{consul}", "taken"),
        ("gl=./wrap {port} consul://{consul}", "placeholders"),
        ("gl=./wrap consul://127.0.0.1:8500", "consul://{consul}"),
    ],
)
def test_a_peer_command_that_cannot_work_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_peer(text)


def test_registrator_runs_as_a_user_runs_it() -> None:
    argv = registrator_subject("--log-level DEBUG").argv(consul="c:1", hostname="h", resync=0.5)

    assert argv[1:] == [
        *("-m", "registrator", "consul://c:1", "--hostname", "h"),
        *("--resync-interval", "0.5", "--log-level", "DEBUG"),
    ]


@pytest.mark.parametrize(
    ("service", "name"),
    [("h:bench-1-2:80", "bench-1-2"), ("h:web:53:udp", "web"), ("a:b:c:d:80", "d"), ("x", "")],
)
def test_a_service_is_matched_to_its_container_by_the_name_in_its_id(
    service: str, name: str
) -> None:
    assert container_name_of(service) == name


def subject(name: str, *, reg: float, dereg: float, burst: float, cpu: float) -> SubjectResults:
    return SubjectResults(
        name=name,
        start_up=StartUp(103, 0.5),
        sequential=Sequential([reg] * 10, [dereg] * 10),
        burst_removal=Burst(100, burst, True),
        burst_start=Burst(100, burst, True),
        idle=Idle(6.0, 2.0, 12, 0, {}),
        exact_at_end=(True, ""),
        footprint=Footprint(38.0, cpu),
        load=(1.0, 1.5),
    )


def results(*subjects: SubjectResults) -> Results:
    floor = Floor(0.2, 1.0, 0.7, 1.2, 0.9, 0.4, 200)
    return Results(100, 103, 2.0, floor, ProxyOverhead(0.1, 0.3), list(subjects))


def test_the_table_judges_registrator_against_the_first_peer_and_the_floor() -> None:
    mine = subject("registrator", reg=3.0, dereg=2.0, burst=5, cpu=1.0)
    peer = subject("gl", reg=4.0, dereg=1.5, burst=7, cpu=0.5)

    table_rows = rows(results(mine, peer))
    judged = {figure.split(":")[0]: (shown, verdict) for figure, _, shown, _, verdict in table_rows}

    assert judged["registration"] == ("0.75x", "met")
    assert judged["deregistration"] == ("1.33x", "**missed**")  # slower than the peer
    assert judged["CPU seconds over the run"] == ("2.00x", "**missed**")
    assert judged["peak RSS, MB"][1] == "met"
    assert "| registrator | gl | registrator / gl |" in table(results(mine, peer))


def test_without_a_peer_only_the_absolute_targets_are_judged() -> None:
    mine = subject("registrator", reg=3.0, dereg=2.0, burst=5, cpu=1.0)

    judged = {figure.split(":")[0]: verdict for figure, _, _, _, verdict in rows(results(mine))}

    assert judged["registration"] == "met"  # 3.0 <= 3 x (0.2 + 1.0), p99 <= 4 x p50
    assert judged["CPU seconds over the run"] == "no peer"
    assert ratio(1.0, 0.0) == ""


def test_a_profile_is_summarised_by_function() -> None:
    lines = [
        "thread (1): MainThread;run (a.py:1);step (d.py:5);inspect (e.py:9) 3",
        "thread (1): MainThread;run (a.py:1);step (d.py:7);register (c.py:2) 1",
        "thread (2): watcher;watch (w.py:3) 4",
    ]

    total, inclusive, own = shares(lines)
    under, below, _ = shares(lines, under="step")

    assert frame_name("Reconciler.changes (registrator/runtime/reconciler.py:66)") == (
        "Reconciler.changes (reconciler.py)"
    )
    assert (total, inclusive["step (d.py)"], own["watch (w.py)"]) == (8, 4, 4)
    assert (under, below["inspect (e.py)"]) == (4, 3)


def test_rounds_pool_latencies_and_take_the_middle_of_the_rest() -> None:
    first = subject("registrator", reg=3.0, dereg=2.0, burst=5, cpu=1.0)
    second = subject("registrator", reg=5.0, dereg=2.0, burst=9, cpu=2.0)
    wrong = dataclasses.replace(second, burst_start=Burst(100, 9, False, "extra 1"))

    merged = merge([first, wrong])

    assert len(merged.sequential.register_ms) == 20
    assert merged.registration.p50 == 4.0
    assert (merged.burst_start.ms, merged.burst_start.exact) == (7.0, False)
    assert merged.footprint.cpu_seconds == 1.5
    assert not merged.exact
    assert merge([first]) is first
