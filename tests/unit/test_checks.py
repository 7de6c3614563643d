"""Checks from declarations, Docker's HEALTHCHECK and --ttl: one per kind, never half-built."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from registrator.core.checks import service_checks
from registrator.core.declarations import declarations
from registrator.core.derive import derive
from registrator.core.model import (
    Binding,
    Check,
    Container,
    ContainerID,
    Derivation,
    Health,
    NetworkAddress,
    Port,
    Service,
    ServiceID,
)
from registrator.core.policy import CheckPolicy
from registrator.docker.inspect import container_from_inspect
from tests.support import POLICY, load_fixture

SID = "h:app:80"


def app(env: dict[str, str] | None = None, **changes: Any) -> Container:
    base = Container(
        id=ContainerID("c0ffee"),
        name="app",
        image="web",
        env=env or {},
        ports=(Port(80, "tcp", (Binding("0.0.0.0", 32768),)),),
    )
    return dataclasses.replace(base, **changes)


def derived(container: Container, **policy: Any) -> Derivation:
    return derive(container, dataclasses.replace(POLICY, checks=CheckPolicy(**policy)))


def checks_of(container: Container, **policy: Any) -> dict[str, Check]:
    (service,) = derived(container, **policy).services
    return {c.id: c for c in service.checks}


def definition(check: Check) -> dict[str, Any]:
    return dict(check.definition)


def test_no_declaration_means_no_check() -> None:
    assert checks_of(app()) == {}


@pytest.mark.parametrize(
    ("env", "check_id", "kind", "expected"),
    [
        (
            {"SERVICE_CHECK_HTTP": "/health"},
            f"service:{SID}:http",
            "http",
            {"HTTP": "http://10.0.0.5:32768/health", "Interval": "10s"},
        ),
        (
            {"SERVICE_CHECK_HTTPS": "/h", "SERVICE_CHECK_TLS_SKIP_VERIFY": "true"},
            f"service:{SID}:https",
            "http",
            {"HTTP": "https://10.0.0.5:32768/h", "Interval": "10s", "TLSSkipVerify": True},
        ),
        (
            {
                "SERVICE_CHECK_HTTP": "/h",
                "SERVICE_CHECK_HTTP_METHOD": "head",
                "SERVICE_CHECK_HEADER": '{"X-Token": "a", "Accept": ["b", "c"]}',
                "SERVICE_CHECK_TIMEOUT": "2s",
            },
            f"service:{SID}:http",
            "http",
            {
                "HTTP": "http://10.0.0.5:32768/h",
                "Interval": "10s",
                "Timeout": "2s",
                "Method": "HEAD",
                "Header": (("Accept", ("b", "c")), ("X-Token", ("a",))),
            },
        ),
        (
            {"SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_INTERVAL": "1m30s"},
            f"service:{SID}:tcp",
            "tcp",
            {"TCP": "10.0.0.5:32768", "Interval": "1m30s"},
        ),
        (
            {"SERVICE_CHECK_GRPC": "true", "SERVICE_CHECK_GRPC_USE_TLS": "yes"},
            f"service:{SID}:grpc",
            "grpc",
            {"GRPC": "10.0.0.5:32768", "GRPCUseTLS": True, "Interval": "10s"},
        ),
        (
            {"SERVICE_CHECK_GRPC": "pkg.Health"},
            f"service:{SID}:grpc",
            "grpc",
            {"GRPC": "10.0.0.5:32768/pkg.Health", "Interval": "10s"},
        ),
        (
            {"SERVICE_CHECK_TTL": "30s", "SERVICE_CHECK_INITIAL_STATUS": "Passing"},
            f"service:{SID}",
            "ttl",
            {"TTL": "30s", "Status": "passing"},
        ),
        (
            {"SERVICE_CHECK_TCP": "on", "SERVICE_CHECK_DEREGISTER_AFTER": "90m"},
            f"service:{SID}:tcp",
            "tcp",
            {"TCP": "10.0.0.5:32768", "Interval": "10s", "DeregisterCriticalServiceAfter": "90m"},
        ),
    ],
)
def test_each_declared_kind_becomes_a_check(
    env: dict[str, str], check_id: str, kind: str, expected: dict[str, Any]
) -> None:
    checks = checks_of(app(env))

    assert list(checks) == [check_id]
    assert checks[check_id].kind == kind
    assert definition(checks[check_id]) == expected
    assert checks[check_id].status is None  # Consul runs it


def test_every_declared_kind_is_its_own_check_with_a_readable_name() -> None:
    env = {
        "SERVICE_NAME": "shop",
        "SERVICE_CHECK_HTTP": "/",
        "SERVICE_CHECK_HTTPS": "/",
        "SERVICE_CHECK_TCP": "true",
        "SERVICE_CHECK_GRPC": "true",
    }
    checks = checks_of(app(env))

    assert {i: c.name for i, c in checks.items()} == {
        f"service:{SID}:http": "shop HTTP",
        f"service:{SID}:https": "shop HTTPS",
        f"service:{SID}:tcp": "shop TCP",
        f"service:{SID}:grpc": "shop gRPC",
    }


def test_a_false_flag_declares_no_check() -> None:
    env = {"SERVICE_CHECK_TCP": "false", "SERVICE_CHECK_GRPC": "no"}

    assert checks_of(app(env)) == {}
    assert derived(app(env)).problems == ()


def test_per_port_declarations_beat_generic_ones_and_address_their_own_port() -> None:
    c = app(
        {
            "SERVICE_CHECK_HTTP": "/generic",
            "SERVICE_8080_CHECK_HTTP": "/admin",
            "SERVICE_8080_CHECK_INTERVAL": "1s",
        },
        ports=(
            Port(80, "tcp", (Binding("0.0.0.0", 32768),)),
            Port(8080, "tcp", (Binding("10.1.1.1", 32769),)),
        ),
    )

    web, admin = derived(c).services

    assert definition(web.checks[0]) == {"HTTP": "http://10.0.0.5:32768/generic", "Interval": "10s"}
    assert definition(admin.checks[0]) == {"HTTP": "http://10.1.1.1:32769/admin", "Interval": "1s"}


def test_check_addresses_follow_an_ipv6_service_address() -> None:
    c = app({"SERVICE_CHECK_TCP": "true"}, ports=(Port(80, "tcp", (Binding("fd00::5", 8080),)),))

    (check,) = checks_of(c).values()

    assert definition(check)["TCP"] == "[fd00::5]:8080"


@pytest.mark.parametrize("enabled", [True, False])
def test_script_checks_need_the_opt_in(enabled: bool) -> None:
    env = {"SERVICE_CHECK_SCRIPT": "check --ip $SERVICE_IP --port=${SERVICE_PORT} 'two words'"}

    d = derived(app(env), enable_script_checks=enabled)

    (service,) = d.services
    if enabled:
        (check,) = service.checks
        assert (check.id, check.kind) == (f"service:{SID}:script", "script")
        assert definition(check)["Args"] == (
            "check",
            "--ip",
            "10.0.0.5",
            "--port=32768",
            "two words",
        )
        assert d.problems == ()
    else:
        assert service.checks == ()  # registered without it, not held critical
        (problem,) = d.problems
        assert (problem.container, problem.key) == ("app", "SERVICE_CHECK_SCRIPT")
        assert "--enable-script-checks" in problem.reason


def test_docker_checks_run_the_command_in_the_container() -> None:
    d = derived(app({"SERVICE_CHECK_DOCKER": "cat /tmp/ok"}), enable_script_checks=True)

    (check,) = d.services[0].checks

    assert check.kind == "docker"
    assert definition(check) == {
        "DockerContainerID": "c0ffee",
        "Args": ("cat", "/tmp/ok"),
        "Interval": "10s",
    }


@pytest.mark.parametrize(
    ("env", "key", "value", "slot"),
    [
        ({"SERVICE_CHECK_HTTP": "/", "SERVICE_CHECK_INTERVAL": "abc"}, "INTERVAL", "abc", ":http"),
        ({"SERVICE_CHECK_TCP": "1", "SERVICE_CHECK_INTERVAL": "10"}, "INTERVAL", "10", ":tcp"),
        ({"SERVICE_CHECK_TCP": "1", "SERVICE_CHECK_TIMEOUT": "-5s"}, "TIMEOUT", "-5s", ":tcp"),
        ({"SERVICE_CHECK_TCP": "1", "SERVICE_CHECK_TIMEOUT": "0s"}, "TIMEOUT", "0s", ":tcp"),
        ({"SERVICE_CHECK_TTL": "soon"}, "TTL", "soon", ""),
        (
            {"SERVICE_CHECK_TTL": "30s", "SERVICE_CHECK_INTERVAL": "5s"},
            "INTERVAL",
            "5s",
            "",
        ),
        (
            {"SERVICE_CHECK_TCP": "1", "SERVICE_CHECK_INITIAL_STATUS": "green"},
            "INITIAL_STATUS",
            "green",
            ":tcp",
        ),
        (
            {"SERVICE_CHECK_HTTP": "/", "SERVICE_CHECK_HEADER": '["X-A", "b"]'},
            "HEADER",
            '["X-A", "b"]',
            ":http",
        ),
        (
            {"SERVICE_CHECK_HTTP": "/", "SERVICE_CHECK_HEADER": '{"X-A": 1}'},
            "HEADER",
            '{"X-A": 1}',
            ":http",
        ),
        ({"SERVICE_CHECK_HTTP": "/", "SERVICE_CHECK_HEADER": "{oops"}, "HEADER", "{oops", ":http"),
        ({"SERVICE_CHECK_HTTP": "health"}, "HTTP", "health", ":http"),
        (
            {"SERVICE_CHECK_HTTP": "/", "SERVICE_CHECK_HTTP_METHOD": "GET /"},
            "HTTP_METHOD",
            "GET /",
            ":http",
        ),
        (
            {"SERVICE_CHECK_HTTPS": "/", "SERVICE_CHECK_TLS_SKIP_VERIFY": "maybe"},
            "TLS_SKIP_VERIFY",
            "maybe",
            ":https",
        ),
        ({"SERVICE_CHECK_TCP": "sure"}, "TCP", "sure", ":tcp"),
        ({"SERVICE_CHECK_GRPC": "a b"}, "GRPC", "a b", ":grpc"),
        (
            {"SERVICE_CHECK_TCP": "1", "SERVICE_CHECK_DEREGISTER_AFTER": "1d"},
            "DEREGISTER_AFTER",
            "1d",
            ":tcp",
        ),
    ],
)
def test_bad_input_holds_that_check_critical_and_names_key_and_value(
    env: dict[str, str], key: str, value: str, slot: str
) -> None:
    d = derived(app(env))

    (problem,) = d.problems
    assert (problem.container, problem.key, problem.value) == ("app", f"SERVICE_CHECK_{key}", value)
    assert "held critical" in problem.reason
    (service,) = d.services  # the service stays, its bad check does not pass for healthy
    (check,) = service.checks
    assert check.id == f"service:{SID}{slot}"
    assert check.kind == "ttl"
    assert check.status == "critical"
    assert f"SERVICE_CHECK_{key}={value}" in check.output
    assert definition(check) == {"TTL": "600s"}


def test_a_bad_key_spoils_only_the_checks_it_applies_to() -> None:
    env = {
        "SERVICE_CHECK_HTTP": "/",
        "SERVICE_CHECK_TTL": "30s",
        "SERVICE_CHECK_TIMEOUT": "abc",
    }

    checks = checks_of(app(env))

    assert checks[f"service:{SID}:http"].status == "critical"
    assert checks[f"service:{SID}"].status is None
    assert definition(checks[f"service:{SID}"]) == {"TTL": "30s"}


def test_https_on_a_udp_port_is_refused() -> None:
    c = app({"SERVICE_CHECK_HTTPS": "/"}, ports=(Port(53, "udp", (Binding("0.0.0.0", 53),)),))

    d = derived(c)

    assert [(p.key, p.value) for p in d.problems] == [("SERVICE_CHECK_HTTPS", "/")]
    assert "udp" in d.problems[0].reason
    (service,) = d.services
    assert [(ch.id, ch.status) for ch in service.checks] == [
        (f"service:{service.id}:https", "critical")
    ]


@pytest.mark.parametrize("key", ["SERVICE_CHECK_TCP", "SERVICE_53_CHECK_TCP"])
def test_a_tcp_check_meant_for_the_tcp_twin_is_left_off_the_udp_port(key: str) -> None:
    both = (Port(53, "tcp", (Binding("0.0.0.0", 53),)), Port(53, "udp", (Binding("0.0.0.0", 53),)))

    d = derived(app({key: "true"}, ports=both))

    assert d.problems == ()
    tcp, udp = d.services
    assert [c.id for c in tcp.checks] == [f"service:{tcp.id}:tcp"]
    assert udp.checks == ()


def test_service_checks_can_be_asked_for_one_service_directly() -> None:
    c = app({"SERVICE_CHECK_TCP": "true"})
    service = Service(ServiceID("h:app:80"), "web", "10.0.0.5", 8080)

    checks, problems = service_checks(
        service, container=c, port=c.ports[0], decl=declarations(c), policy=CheckPolicy()
    )

    assert problems == ()
    assert [dict(ch.definition)["TCP"] for ch in checks] == ["10.0.0.5:8080"]


def test_a_bad_generic_key_is_reported_once_for_several_ports() -> None:
    c = app(
        {"SERVICE_CHECK_TCP": "1", "SERVICE_CHECK_INTERVAL": "abc"},
        ports=(
            Port(80, "tcp", (Binding("0.0.0.0", 1),)),
            Port(81, "tcp", (Binding("0.0.0.0", 2),)),
        ),
    )

    assert len(derived(c).problems) == 1


def test_unknown_check_keys_are_reported_and_ignored() -> None:
    d = derived(app({"SERVICE_CHECK_HTPP": "/x", "SERVICE_CHECK_TCP": "1"}))

    assert [(p.key, p.reason) for p in d.problems] == [
        ("SERVICE_CHECK_HTPP", "unknown check key; ignored")
    ]
    assert list(checks_of(app({"SERVICE_CHECK_HTPP": "/x"}))) == []


def test_check_keys_never_leak_into_meta() -> None:
    (service,) = derived(app({"SERVICE_CHECK_HTTP": "/", "SERVICE_CHECK_INTERVAL": "5s"})).services

    assert dict(service.meta) == {"registrator_host": "h"}


# -- Docker HEALTHCHECK ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("health", "initial", "status", "output"),
    [
        (Health("starting"), None, "critical", "Docker health: starting"),
        (Health("starting"), "warning", "warning", "Docker health: starting"),
        (Health("healthy", "ok"), "warning", "passing", "ok"),
        (Health("unhealthy", "boom"), None, "critical", "boom"),
    ],
)
def test_docker_health_is_mirrored(
    health: Health, initial: str | None, status: str, output: str
) -> None:
    env = {"SERVICE_CHECK_INITIAL_STATUS": initial} if initial else {}

    (check,) = checks_of(app(env, health=health)).values()

    assert check.id == "service:h:app:80:docker-health"
    assert (check.kind, check.status) == ("ttl", status)
    assert check.output == output
    assert definition(check) == {"TTL": "600s"}  # ten minutes, with no --ttl


def test_docker_health_status_is_not_part_of_the_definition() -> None:
    starting = checks_of(app(health=Health("starting")))
    healthy = checks_of(app(health=Health("healthy", "ok")))

    assert [c.reported() for c in starting.values()] == [c.reported() for c in healthy.values()]


@pytest.mark.parametrize(
    ("env", "policy"),
    [
        ({"SERVICE_CHECK_DOCKER_HEALTH": "false"}, {}),
        ({"SERVICE_80_CHECK_DOCKER_HEALTH": "no"}, {}),
        ({}, {"docker_health": False}),
    ],
)
def test_docker_health_mirroring_can_be_turned_off(
    env: dict[str, str], policy: dict[str, Any]
) -> None:
    assert checks_of(app(env, health=Health("healthy")), **policy) == {}


def test_ttl_option_adds_a_passing_check_to_every_service_and_sets_driven_ttls() -> None:
    checks = checks_of(app(health=Health("healthy")), ttl=30, ttl_refresh=10)

    own = checks[f"service:{SID}:registrator"]
    assert (own.kind, own.status, definition(own)) == ("ttl", "passing", {"TTL": "30s"})
    assert definition(checks[f"service:{SID}:docker-health"]) == {"TTL": "30s"}


@pytest.mark.parametrize(
    ("ttl", "refresh", "interval"),
    [(0, 0, 200.0), (30, 0, 10.0), (30, 5, 5.0)],
)
def test_driven_checks_are_refreshed_well_within_their_ttl(
    ttl: int, refresh: int, interval: float
) -> None:
    assert CheckPolicy(ttl=ttl, ttl_refresh=refresh).refresh_interval == interval


def test_notes_carry_a_digest_that_changes_with_the_definition() -> None:
    (a,) = checks_of(app({"SERVICE_CHECK_HTTP": "/a"})).values()
    (a_again,) = checks_of(app({"SERVICE_CHECK_HTTP": "/a"})).values()
    (b,) = checks_of(app({"SERVICE_CHECK_HTTP": "/b"})).values()

    assert a.reported() == a_again.reported()
    assert a.reported() != b.reported()
    assert "SERVICE_CHECK_HTTP" in a.notes


def test_a_captured_unhealthy_container_gets_a_critical_mirror_with_the_probe_output() -> None:
    c = container_from_inspect(load_fixture("inspect-healthcheck.json"))

    (service,) = derived(c).services

    (check,) = service.checks
    assert check.id == "service:h:web-healthcheck:80:docker-health"
    assert (check.status, check.output) == ("critical", "probing")


def test_checks_of_an_internal_service_probe_the_container_address_and_port() -> None:
    c = app({"SERVICE_CHECK_HTTP": "/h"}, networks={"bridge": NetworkAddress("172.17.0.9")})
    policy = dataclasses.replace(POLICY, internal=True)

    (service,) = derive(c, policy).services

    assert dict(service.checks[0].definition)["HTTP"] == "http://172.17.0.9:80/h"
