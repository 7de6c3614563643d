"""The pure plan: desired vs actual."""

from __future__ import annotations

import dataclasses
import functools

from registrator.core.model import Check, Service, ServiceID
from registrator.core.plan import (
    ClearMaintenance,
    Deregister,
    Plan,
    Register,
    SetMaintenance,
    UpdateCheck,
)
from registrator.core.plan import (
    plan as plan_for,
)
from registrator.registries.consul.held import reported

#: plans as against the Consul agent, which keeps a service as `reported` says
plan = functools.partial(plan_for, stored=reported)


def svc(sid: str, port: int = 80, name: str = "web") -> Service:
    return Service(id=ServiceID(sid), name=name, address="10.0.0.1", port=port)


def by_id(*services: Service) -> dict[ServiceID, Service]:
    return {s.id: s for s in services}


def registered(p: Plan) -> list[str]:
    return [a.service_id for a in p.of(Register)]


def deregistered(p: Plan) -> tuple[str, ...]:
    return tuple(a.service_id for a in p.of(Deregister))


def statuses(p: Plan) -> tuple[UpdateCheck, ...]:
    return tuple(a for a in p.actions if isinstance(a, UpdateCheck))


def test_nothing_to_do_when_equal() -> None:
    p = plan(by_id(svc("a"), svc("b")), by_id(svc("a"), svc("b")))

    assert p.empty
    assert p.unchanged == 2


def test_missing_are_registered_changed_re_registered_stale_removed() -> None:
    desired = by_id(svc("new"), svc("changed", port=81), svc("same"))
    actual = by_id(svc("changed", port=80), svc("same"), svc("stale"))

    p = plan(desired, actual)

    assert registered(p) == ["changed", "new"]
    assert deregistered(p) == ("stale",)
    assert p.unchanged == 1


def test_scope_limits_the_plan_to_the_named_services() -> None:
    desired = by_id(svc("a", port=1), svc("b"))
    actual = by_id(svc("a"), svc("stale"))

    p = plan(desired, actual, scope={ServiceID("b")})

    assert registered(p) == ["b"]
    assert deregistered(p) == ()


def test_the_container_a_service_comes_from_is_not_compared() -> None:
    desired = Service(id=ServiceID("a"), name="w", address="x", port=1, container="c1")
    actual = Service(id=ServiceID("a"), name="w", address="x", port=1)

    assert plan(by_id(desired), by_id(actual)).empty


HTTP = Check("service:a:http", "web HTTP", "http", (("HTTP", "http://x:1/"),), notes="n1")
MIRROR = Check("service:a:docker-health", "web Docker HEALTHCHECK", "ttl", notes="n2")


def with_checks(*checks: Check) -> Service:
    return dataclasses.replace(svc("a"), checks=checks)


def as_agent_reports(check: Check, status: str = "critical", output: str = "") -> Check:
    return dataclasses.replace(check.reported(), status=status, output=output)


def test_checks_are_compared_as_the_agent_reports_them() -> None:
    desired = with_checks(HTTP)
    actual = with_checks(as_agent_reports(HTTP, "passing", "HTTP 200"))

    assert plan(by_id(desired), by_id(actual)).empty


def test_a_check_removed_or_edited_in_consul_re_registers_the_service() -> None:
    desired = with_checks(HTTP)
    edited = dataclasses.replace(as_agent_reports(HTTP), notes="changed by hand")

    assert registered(plan(by_id(desired), by_id(with_checks()))) == ["a"]
    assert registered(plan(by_id(desired), by_id(with_checks(edited)))) == ["a"]


def test_an_undeclared_check_on_an_owned_service_is_drift_too() -> None:
    desired = with_checks(HTTP)
    actual = with_checks(as_agent_reports(HTTP), as_agent_reports(MIRROR))

    assert registered(plan(by_id(desired), by_id(actual))) == ["a"]


def test_a_driven_check_status_is_updated_without_re_registering() -> None:
    desired = with_checks(dataclasses.replace(MIRROR, status="passing", output="ok"))
    actual = with_checks(as_agent_reports(MIRROR, "critical", "starting"))

    p = plan(by_id(desired), by_id(actual))

    assert registered(p) == []
    assert statuses(p) == (UpdateCheck(ServiceID("a"), desired.checks[0], changed=True),)
    assert not p.empty


def test_a_driven_check_already_right_is_left_alone_unless_refreshing() -> None:
    desired = with_checks(dataclasses.replace(MIRROR, status="passing", output="ok"))
    actual = with_checks(as_agent_reports(MIRROR, "passing", "ok"))

    assert plan(by_id(desired), by_id(actual)).empty
    refreshed = plan(by_id(desired), by_id(actual), refresh=True)
    assert [(u.check.id, u.changed) for u in statuses(refreshed)] == [(MIRROR.id, False)]


def test_a_new_service_gets_its_driven_statuses_written_after_registering() -> None:
    desired = with_checks(dataclasses.replace(MIRROR, status="critical", output="starting"))

    p = plan(by_id(desired), {})

    assert registered(p) == ["a"]
    assert [u.check.id for u in statuses(p)] == [MIRROR.id]


def test_statuses_of_services_out_of_scope_are_not_touched() -> None:
    desired = with_checks(dataclasses.replace(MIRROR, status="passing"))

    assert statuses(plan(by_id(desired), {}, scope={ServiceID("b")})) == ()


def test_a_changed_paused_service_is_registered_then_put_back_in_maintenance() -> None:
    desired = dataclasses.replace(svc("a", port=81), maintenance="container paused")
    actual = dataclasses.replace(svc("a"), maintenance="container paused")

    p = plan(by_id(desired), by_id(actual))

    assert p.actions == (
        Register(desired, replaces=True),
        SetMaintenance(ServiceID("a"), "container paused"),
    )


def test_pause_and_unpause_are_maintenance_actions_not_updates() -> None:
    paused = dataclasses.replace(svc("a"), maintenance="container paused")

    assert plan(by_id(paused), by_id(svc("a"))).actions == (
        SetMaintenance(ServiceID("a"), "container paused"),
    )
    assert plan(by_id(svc("a")), by_id(paused)).actions == (ClearMaintenance(ServiceID("a")),)


def test_adopted_services_of_a_kept_container_stay_as_registered() -> None:
    kept = svc("h:job:80")

    p = plan({}, by_id(kept, svc("h:gone:80")), adopt=["h:job:"])

    assert p.actions == (Deregister(ServiceID("h:gone:80")),)
    assert p.unchanged == 1
