"""Catalog mode's health: the threshold state machine, and statuses in the plan (written only
when they change), with the fake registry the contract test holds to the catalog."""

from __future__ import annotations

import dataclasses

import pytest

from registrator.core.health import Threshold, probe_of, probes, with_statuses
from registrator.core.model import OWNER_META_KEY, Check, Service, ServiceID
from registrator.core.plan import Register, UpdateCheck, plan
from tests.unit.fakes import FakeConsul

SID = ServiceID("h:web:80")


def http_check(**definition: object) -> Check:
    spec = {"HTTP": "http://127.0.0.5:8080/health", "Interval": "2s", **definition}
    return Check(f"service:{SID}:http", "web HTTP", "http", tuple(sorted(spec.items())), "n")  # type: ignore[arg-type]


def web(*checks: Check) -> Service:
    return Service(
        SID, "web", "127.0.0.5", 8080, meta=((OWNER_META_KEY, "h"),), checks=checks, container="c1"
    )


def test_a_probe_is_read_from_the_checks_definition() -> None:
    check = http_check(
        Timeout="1s", FailuresBeforeCritical=3, SuccessBeforePassing=2, Status="passing"
    )
    probe = probe_of(web(check), check)

    assert probe is not None
    assert (probe.kind, probe.target, probe.interval, probe.timeout) == (
        "http",
        "http://127.0.0.5:8080/health",
        2.0,
        1.0,
    )
    assert (probe.failures_before_critical, probe.success_before_passing) == (3, 2)
    assert (probe.initial, probe.container) == ("passing", "c1")


def test_a_driven_check_is_not_probed_and_a_declared_ttl_is_run_as_a_ttl() -> None:
    driven = Check("d", "docker", "ttl", (("TTL", "600s"),), status="passing")
    ttl = Check("t", "ttl", "ttl", (("TTL", "30s"),))

    [(check, probe)] = probes({SID: web(driven, ttl)}).items()

    assert check == "t"
    assert (probe.kind, probe.target, probe.interval) == ("ttl", "", 30.0)
    assert probe.initial == "critical"


@pytest.mark.parametrize(
    ("failures", "results", "statuses"),
    [
        (0, ["critical", "passing"], ["critical", "passing"]),
        (3, ["critical", "critical", "passing", "critical", "critical", "critical"], ["critical"]),
        (2, ["warning", "warning"], ["warning"]),
    ],
)
def test_failures_before_critical_counts_failures_in_a_row(
    failures: int, results: list[str], statuses: list[str]
) -> None:
    check = http_check(FailuresBeforeCritical=failures)
    probe = probe_of(web(check), check)
    assert probe is not None
    state = Threshold("passing")

    changes = [state.status for r in results if state.observe(probe, r, r, now=0)]

    assert changes == statuses


def test_success_before_passing_counts_passes_in_a_row() -> None:
    check = http_check(SuccessBeforePassing=2)
    probe = probe_of(web(check), check)
    assert probe is not None
    state = Threshold("critical")

    assert not state.observe(probe, "passing", "ok", now=0)
    assert not state.observe(probe, "critical", "no", now=1)
    assert not state.observe(probe, "passing", "ok", now=2)
    assert state.observe(probe, "passing", "ok 2", now=3)
    assert (state.status, state.output) == ("passing", "ok 2")


def test_critical_for_the_deregister_delay_expires() -> None:
    check = http_check(DeregisterCriticalServiceAfter="10s")
    probe = probe_of(web(check), check)
    assert probe is not None
    state = Threshold("passing")
    state.observe(probe, "critical", "down", now=100)

    assert not state.expired(probe, 109)
    assert state.expired(probe, 110)
    state.observe(probe, "passing", "up", now=111)
    assert not state.expired(probe, 200)


def test_an_unprobed_check_keeps_the_catalogs_status_else_starts_as_declared() -> None:
    check = http_check(Status="warning")
    held = web(dataclasses.replace(check, status="passing", output="was fine"))

    [kept] = with_statuses({SID: web(check)}, {SID: held}, {})[SID].checks
    [new] = with_statuses({SID: web(check)}, {}, {})[SID].checks

    assert (kept.status, kept.output) == ("passing", "was fine")
    assert (new.status, new.output) == ("warning", "")


def test_the_plan_writes_a_probed_status_only_when_it_changes() -> None:
    registry = FakeConsul()
    check = http_check()
    states = {check.id: Threshold("critical", "")}
    first = plan(with_statuses({SID: web(check)}, {}, states), {}, stored=registry.stored)
    assert [type(a) for a in first.actions] == [Register, UpdateCheck]
    for action in first.of(Register):
        registry.register(action.service)  # type: ignore[union-attr]
    held = registry.services(owner="h")

    idle = plan(with_statuses({SID: web(check)}, held, states), held, stored=registry.stored)
    states[check.id].observe(probe_of(web(check), check), "passing", "200 OK", now=1)  # type: ignore[arg-type]
    changed = plan(with_statuses({SID: web(check)}, held, states), held, stored=registry.stored)

    assert idle.empty
    [update] = changed.actions
    assert isinstance(update, UpdateCheck)
    assert (update.check.status, update.check.output) == ("passing", "200 OK")


def test_a_service_critical_too_long_is_planned_away() -> None:
    registry = FakeConsul()
    service = web(http_check())
    registry.register(service)
    held = registry.services(owner="h")

    todo = plan(
        with_statuses({SID: service}, held, {}, expired={SID}), held, stored=registry.stored
    )

    assert todo.count() == {"service.deregistered": 1}
