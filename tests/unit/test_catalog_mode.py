"""Catalog mode's pure parts: the transaction a registration is, and the options it needs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from registrator.app.settings import Settings, check_policy
from registrator.core.derive import derive
from registrator.core.errors import RegistryRefused
from registrator.core.model import (
    OWNER_META_KEY,
    Binding,
    Check,
    Container,
    ContainerID,
    Port,
    Service,
    ServiceID,
)
from registrator.core.policy import CheckPolicy, Policy
from registrator.registries.catalog.txn import check_op, maintenance_op, service_ops

HTTP = Check(
    "service:h:web:80:http",
    "web HTTP",
    "http",
    (("HTTP", "http://127.0.0.5:8080/"), ("Interval", "5s"), ("FailuresBeforeCritical", 3)),
    notes="declared; registrator definition 0123",
)
WEB = Service(
    ServiceID("h:web:80"), "web", "127.0.0.5", 8080, meta=((OWNER_META_KEY, "h"),), checks=(HTTP,)
)


def test_a_registration_replaces_the_service_whole_with_its_checks() -> None:
    ops = service_ops("h", WEB)

    assert [(next(iter(op)), next(iter(op.values()))["Verb"]) for op in ops] == [
        ("Service", "delete"),
        ("Service", "set"),
        ("Check", "set"),
    ]
    body = ops[1]["Service"]["Service"]
    assert (body["ID"], body["Service"], body["Port"]) == ("h:web:80", "web", 8080)
    assert "Checks" not in body
    assert "Name" not in body


def test_a_check_carries_only_what_the_catalog_keeps_and_starts_critical() -> None:
    check = check_op("h", "h:web:80", HTTP)["Check"]["Check"]

    assert check["Definition"] == {"HTTP": "http://127.0.0.5:8080/", "Interval": "5s"}
    assert (check["Node"], check["ServiceID"], check["Status"]) == ("h", "h:web:80", "critical")


def test_a_ttl_go_cannot_parse_is_refused_before_anything_is_sent() -> None:
    bad = Check("c", "n", "ttl", (("TTL", "99999999999999999999s"),))

    with pytest.raises(RegistryRefused, match="invalid duration"):
        check_op("h", "h:web:80", bad)


def test_maintenance_is_the_agents_check_in_the_catalog() -> None:
    check = maintenance_op("h", "h:web:80", "container paused")["Check"]["Check"]

    assert check["CheckID"] == "_service_maintenance:h:web:80"
    assert (check["Status"], check["Notes"]) == ("critical", "container paused")


def test_catalog_mode_needs_ip() -> None:
    with pytest.raises(ValidationError, match="--ip"):
        Settings(registry_uri="consul-catalog://127.0.0.1:8500")
    assert Settings(registry_uri="consul-catalog://127.0.0.1:8500", ip="127.0.0.5").ip


def test_catalog_mode_has_no_agent_to_run_checks() -> None:
    catalog = Settings(registry_uri="consul-catalog-tls://c:8501", ip="127.0.0.5")

    assert check_policy(catalog).agentless
    assert not check_policy(Settings(registry_uri="consul://c:8500")).agentless


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SERVICE_CHECK_SCRIPT", "true"),
        ("SERVICE_CHECK_DOCKER", "true"),
        ("SERVICE_CHECK_GRPC", "1"),
    ],
)
def test_checks_no_agent_could_run_are_refused_in_catalog_mode_naming_key_and_value(
    key: str, value: str
) -> None:
    container = Container(
        id=ContainerID("c0ffee"),
        name="app",
        image="web",
        env={key: value, "SERVICE_CHECK_TCP": "true"},
        ports=(Port(80, "tcp", (Binding("0.0.0.0", 32768),)),),
    )
    policy = CheckPolicy(enable_script_checks=True, agentless=True)

    found = derive(container, Policy(hostname="h", host_ip="10.0.0.5", checks=policy))

    [service] = found.services
    assert [c.kind for c in service.checks] == ["tcp"]
    [problem] = found.problems
    assert (problem.container, problem.key, problem.value) == ("app", key, value)
    assert "catalog mode" in problem.reason
