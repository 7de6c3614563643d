"""The pure plan: desired vs actual."""

from __future__ import annotations

from registrator.model import Service, ServiceID
from registrator.plan import plan


def svc(sid: str, port: int = 80, name: str = "web") -> Service:
    return Service(id=ServiceID(sid), name=name, address="10.0.0.1", port=port)


def by_id(*services: Service) -> dict[ServiceID, Service]:
    return {s.id: s for s in services}


def test_nothing_to_do_when_equal() -> None:
    p = plan(by_id(svc("a"), svc("b")), by_id(svc("a"), svc("b")))

    assert p.empty
    assert p.unchanged == 2


def test_missing_are_registered_changed_re_registered_stale_removed() -> None:
    desired = by_id(svc("new"), svc("changed", port=81), svc("same"))
    actual = by_id(svc("changed", port=80), svc("same"), svc("stale"))

    p = plan(desired, actual)

    assert [s.id for s in p.register] == ["changed", "new"]
    assert p.deregister == ("stale",)
    assert p.unchanged == 1


def test_scope_limits_the_plan_to_the_named_services() -> None:
    desired = by_id(svc("a", port=1), svc("b"))
    actual = by_id(svc("a"), svc("stale"))

    p = plan(desired, actual, scope={ServiceID("b")})

    assert [s.id for s in p.register] == ["b"]
    assert p.deregister == ()


def test_the_container_a_service_comes_from_is_not_compared() -> None:
    desired = Service(id=ServiceID("a"), name="w", address="x", port=1, container="c1")
    actual = Service(id=ServiceID("a"), name="w", address="x", port=1)

    assert plan(by_id(desired), by_id(actual)).empty
