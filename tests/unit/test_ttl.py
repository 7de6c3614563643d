"""Catalog mode's TTL checks: reading a report, the TTL's state (what to write, and when), the
runner driving it with a fake clock, and the agent API answered on the status listener."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from loguru import logger

from harness.waits import wait_until
from registrator.app.check_reports import CheckReports, body_length
from registrator.app.metrics import Metrics
from registrator.app.status import Readiness, StatusServer
from registrator.core.health import Probe, probe_of
from registrator.core.model import OWNER_META_KEY, Check, ContainerID, Service, ServiceID
from registrator.core.plan import Register, UpdateCheck, plan
from registrator.core.ttl import OUTPUT_EVERY, BadReport, Report, Ttl, report_of, started
from registrator.runtime.probes import ProbeRunner, UnknownCheck
from tests.unit.fakes import FakeConsul
from tests.unit.test_status import Clock

SID = ServiceID("h:web:80")
CHECK = f"service:{SID}"


def web(ttl: str = "10s", **more: str) -> Service:
    check = Check(CHECK, "web TTL", "ttl", tuple(sorted({"TTL": ttl, **more}.items())), "n")
    meta = ((OWNER_META_KEY, "h"),)
    return Service(SID, "web", "127.0.0.1", 80, meta=meta, checks=(check,), container="c1")


def probe(service: Service | None = None) -> Probe:
    service = service or web()
    found = probe_of(service, service.checks[0])
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("verb", "note", "body", "expected"),
    [
        ("pass", "all good", b"", Report("passing", "all good")),
        ("warn", "", b"", Report("warning", "")),
        ("fail", "db down", b"", Report("critical", "db down")),
        ("update", "", b'{"Status": "warning", "Output": "slow"}', Report("warning", "slow")),
        ("update", "", b'{"Status": "passing"}', Report("passing", "")),
    ],
)
def test_a_report_is_read_as_the_agent_reads_it(
    verb: str, note: str, body: bytes, expected: Report
) -> None:
    assert report_of(verb, note=note, body=body) == expected


@pytest.mark.parametrize(
    ("verb", "body", "said"),
    [
        ("update", b'{"Status": "fine"}', "'fine'"),
        ("update", b"{not json", "not JSON"),
        ("update", b"[1]", "not a JSON object"),
        ("update", b'{"Status": "passing", "Output": 3}', "Output is not a string: 3"),
        ("register", b"", "'register'"),
    ],
)
def test_a_bad_report_says_which_value(verb: str, body: bytes, said: str) -> None:
    with pytest.raises(BadReport, match=said):
        report_of(verb, body=body)


def test_an_output_is_cut_as_consul_cuts_it() -> None:
    assert len(report_of("pass", note="x" * 10_000).output) == 4096


def test_a_report_restarts_the_ttl_and_only_a_change_is_written() -> None:
    ttl = probe()
    state = started(ttl, "critical", "", now=0)

    assert state.report(ttl, Report("passing", "ok"), now=5)
    assert not state.report(ttl, Report("passing", "ok"), now=12)  # same: nothing to write
    assert not state.lapse(ttl, now=21)  # the TTL ran from the last report, at 12
    assert state.deadline == 22
    assert (state.status, state.output) == ("passing", "ok")


def test_a_ttl_that_runs_out_is_critical_once() -> None:
    ttl = probe()
    state = started(ttl, "passing", "ok", now=0)

    assert state.lapse(ttl, now=10)
    assert (state.status, state.output) == ("critical", "TTL expired: no report within 10s")
    assert not state.lapse(ttl, now=20)
    assert not state.lapse(ttl, now=1000)
    assert state.report(ttl, Report("passing", "back"), now=1001)
    assert state.status == "passing"


def test_a_ttl_already_critical_with_its_expiry_is_not_written_again() -> None:
    ttl = probe()
    state = Ttl("critical", "TTL expired: no report within 10s", deadline=10)

    assert not state.lapse(ttl, now=10)


def test_an_output_alone_that_changes_is_written_at_most_once_per_interval() -> None:
    ttl = probe()
    state = started(ttl, "passing", "ok", now=0)

    assert not state.report(ttl, Report("passing", "ok at 1"), now=1)
    assert not state.report(ttl, Report("passing", "ok at 2"), now=2)
    assert state.report(ttl, Report("passing", "ok at 300"), now=OUTPUT_EVERY)
    assert state.output == "ok at 300"
    assert state.report(ttl, Report("warning", "slow"), now=OUTPUT_EVERY + 1)  # a status: at once


def test_an_output_held_back_is_written_once_its_interval_has_passed() -> None:
    ttl = probe(web(ttl="10m"))
    state = started(ttl, "passing", "ok", now=0)
    assert not state.report(ttl, Report("passing", "ok at 5"), now=5)
    assert state.due(ttl) == OUTPUT_EVERY  # before the TTL's end (600 s)

    assert not state.flush(now=OUTPUT_EVERY - 1)
    assert state.flush(now=OUTPUT_EVERY)
    assert (state.status, state.output) == ("passing", "ok at 5")
    assert not state.flush(now=2 * OUTPUT_EVERY)  # written once
    assert state.due(ttl) == 5 + 600  # the TTL's end again


def test_an_output_held_back_then_reported_as_written_is_not_written() -> None:
    ttl = probe(web(ttl="10m"))
    state = started(ttl, "passing", "ok", now=0)
    state.report(ttl, Report("passing", "ok at 5"), now=5)
    state.report(ttl, Report("passing", "ok"), now=6)  # back to what the catalog holds

    assert not state.flush(now=OUTPUT_EVERY)


def test_the_runner_writes_a_held_output_when_its_interval_has_passed() -> None:
    clock, told, stop = Clock(), list[ContainerID](), threading.Event()
    runner = ProbeRunner(clock=clock)
    runner.statuses({SID: web(ttl="10m")}, {}, None)
    runner.report(CHECK, Report("passing", "ok"))
    clock.now = 5.0
    runner.report(CHECK, Report("passing", "ok at 5"))  # held back
    thread = threading.Thread(target=runner.run, args=(stop, told.append), daemon=True)
    thread.start()
    try:
        assert runner.results()[CHECK] == ("passing", "ok")
        clock.now = OUTPUT_EVERY + 1
        wait_until(lambda: told, what="the held output told")
    finally:
        stop.set()
        thread.join(5)

    assert told == ["c1"]  # the reports before `run` are told to no one
    assert runner.results()[CHECK] == ("passing", "ok at 5")


def test_a_ttl_critical_for_its_deregister_delay_expires_and_is_looked_at_then() -> None:
    ttl = probe(web(DeregisterCriticalServiceAfter="1m"))
    state = started(ttl, "passing", "", now=0)
    state.lapse(ttl, now=10)

    assert state.due(ttl) == 70
    assert not state.expired(ttl, 69)
    assert state.expired(ttl, 70)


def test_the_plan_writes_a_reported_status_only_when_it_changes() -> None:
    registry = FakeConsul()
    runner = ProbeRunner()
    first = plan(runner.statuses({SID: web()}, {}, None), {}, stored=registry.stored)
    for action in first.of(Register):
        registry.register(action.service)  # type: ignore[union-attr]
    held = registry.services(owner="h")

    runner.report(CHECK, Report("passing", "ok"))
    [update] = plan(runner.statuses({SID: web()}, held, None), held, stored=registry.stored).actions
    assert isinstance(update, UpdateCheck)
    registry.update_ttl(update.check)
    held = registry.services(owner="h")
    runner.report(CHECK, Report("passing", "ok"))

    assert (update.check.status, update.check.output) == ("passing", "ok")
    assert plan(runner.statuses({SID: web()}, held, None), held, stored=registry.stored).empty


def test_a_ttl_check_that_nothing_can_report_on_is_said_once() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    try:
        for reported in (True, False):
            runner = ProbeRunner(reported=reported)
            for _ in range(2):
                runner.statuses({SID: web()}, {}, None)
    finally:
        logger.remove(sink)

    assert lines == ["check.ttl_unreportable"]  # the listener-less runner, its first sight


@pytest.fixture
def driven() -> Iterator[tuple[ProbeRunner, Clock, list[ContainerID]]]:
    """A runner with a fake clock, running, with one TTL check of 10 s (from 0)."""
    clock, told, stop = Clock(), list[ContainerID](), threading.Event()
    runner = ProbeRunner(clock=clock)
    runner.statuses({SID: web()}, {}, None)
    thread = threading.Thread(target=runner.run, args=(stop, told.append), daemon=True)
    thread.start()
    yield runner, clock, told
    stop.set()
    thread.join(5)


def test_the_runner_makes_a_silent_ttl_critical_once_and_a_report_passing(
    driven: tuple[ProbeRunner, Clock, list[ContainerID]],
) -> None:
    runner, clock, told = driven
    clock.now = 10.5  # no report within the TTL: its expiry is written (critical already)
    wait_until(lambda: len(told) == 1, what="the first TTL's end told")
    runner.report(CHECK, Report("passing", "ok"))
    assert runner.results()[CHECK] == ("passing", "ok")

    clock.now = 21.0
    wait_until(lambda: len(told) == 3, what="the second TTL's end told")
    assert runner.results()[CHECK] == ("critical", "TTL expired: no report within 10s")
    clock.now = 100.0
    runner.report(CHECK, Report("passing", "ok"))
    runner.report(CHECK, Report("passing", "ok"))

    assert told == ["c1"] * 4  # expired, passing, expired, passing: the same report twice once


def test_a_report_on_a_check_not_driven_here_is_unknown() -> None:
    runner = ProbeRunner()
    with pytest.raises(UnknownCheck):
        runner.report("service:nobody", Report("passing", ""))


@pytest.fixture
def server() -> Iterator[tuple[StatusServer, ProbeRunner]]:
    metrics, runner = Metrics(), ProbeRunner()
    runner.statuses({SID: web()}, {}, None)
    readiness = Readiness(metrics, {})
    reports = CheckReports(runner)
    running = StatusServer(
        ("127.0.0.1", 0), metrics=metrics, readiness=readiness, reports=reports
    ).start()
    yield running, runner
    running.close()


def put(server: StatusServer, path: str, body: bytes = b"") -> tuple[int, str]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, body, method="PUT"), timeout=5
        ) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()


def test_the_agent_api_is_answered_on_the_status_listener(
    server: tuple[StatusServer, ProbeRunner],
) -> None:
    listening, runner = server
    encoded = CHECK.replace(":", "%3A")

    assert put(listening, f"/v1/agent/check/warn/{encoded}?note=slow%20disk") == (200, "")
    assert runner.results()[CHECK] == ("warning", "slow disk")
    body = b'{"Status": "passing", "Output": "fine"}'
    assert put(listening, f"/v1/agent/check/update/{CHECK}", body) == (200, "")
    assert runner.results()[CHECK] == ("passing", "fine")


def test_bad_reports_are_refused_with_one_line_each_and_change_nothing(
    server: tuple[StatusServer, ProbeRunner],
) -> None:
    listening, runner = server
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message} {extra}")
    try:
        unknown = [put(listening, "/v1/agent/check/pass/service:other") for _ in range(3)]
        bad = put(listening, f"/v1/agent/check/update/{CHECK}", b'{"Status": "great"}')
        not_json = put(listening, f"/v1/agent/check/update/{CHECK}", b"{")
    finally:
        logger.remove(sink)

    assert [code for code, _ in unknown] == [404, 404, 404]
    assert "service:other" in unknown[0][1]
    assert bad[0] == not_json[0] == 400
    assert "'great'" in bad[1]
    assert len(lines) == 3  # the unknown check said once, each bad body once
    assert "service:other" in lines[0]
    assert "'great'" in lines[1]
    assert runner.results()[CHECK] == ("critical", "")


def test_a_report_without_catalog_mode_finds_nothing_to_report_to() -> None:
    metrics = Metrics()
    running = StatusServer(("127.0.0.1", 0), metrics=metrics, readiness=Readiness(metrics, {}))
    running.start()
    try:
        assert put(running, f"/v1/agent/check/pass/{CHECK}")[0] == 404
    finally:
        running.close()


@pytest.mark.parametrize(
    ("header", "length"), [(None, 0), ("12", 12), ("x", None), ("99999999", None)]
)
def test_a_body_is_read_only_with_a_length_registrator_takes(
    header: str | None, length: int | None
) -> None:
    assert body_length(header) == length
