"""The `explain` report and the sub-commands' own parsing."""

from __future__ import annotations

import pytest

from registrator.app.commands import _local_url
from registrator.app.commands import main as subcommand
from registrator.app.explain import ConsulView, report
from registrator.core.derive import derive
from registrator.core.model import (
    Binding,
    Check,
    Container,
    ContainerID,
    NetworkAddress,
    Port,
    Service,
    ServiceID,
)
from registrator.core.policy import Policy
from tests.support import POLICY


def shop(**env: str) -> Container:
    return Container(
        ContainerID("0123456789abcdef"),
        "shop",
        "nginx:1.25",
        env={"SERVICE_NAME": "shop", **env},
        ports=(Port(80, "tcp", (Binding("0.0.0.0", 32768),)), Port(8080, "tcp")),
    )


def test_report_lists_services_skips_with_hints_and_problems() -> None:
    container = shop(**{"SERVICE_BAD.KEY": "x", "SERVICE_TAGS": "a,b"})

    text = report(container, derive(container, POLICY), policy=POLICY, consul=ConsulView(owned={}))

    assert text.splitlines() == [
        "container shop (0123456789ab), image nginx:1.25, running",
        "host identity h; published ports are registered at 10.0.0.5 (the Consul agent's address)",
        "on its stop signal (SIGTERM, docker stop): drained (maintenance) until it dies, 15s at"
        " most (--drain maintenance)",
        "",
        "services (1):",
        "  h:shop:80",
        "    name     shop-80",
        "    address  10.0.0.5:32768",
        "    tagged   lan_ipv4=10.0.0.5:32768",
        "    weights  passing 1, warning 1",
        "    tags     a, b",
        "    meta     registrator_host=h",
        "    in Consul: not registered (registrator registers it on its next pass over this"
        " container)",
        "",
        "skipped:",
        "  8080/tcp: exposed but not published (publish it with -p, or run registrator with"
        " --internal)",
        "",
        "problems (each logged once as container.bad_declaration):",
        "  SERVICE_BAD.KEY=x: not a Consul Meta key (letters, digits, _ and - up to 128, no"
        " consul- prefix)",
    ]


def test_report_compares_with_what_consul_holds() -> None:
    container = shop()
    [service] = derive(container, POLICY).services
    stale = Service(service.id, "shop", "10.0.0.5", 1, meta=service.meta)

    same = report(
        container,
        derive(container, POLICY),
        policy=POLICY,
        consul=ConsulView(owned={service.id: service}),
    )
    differs = report(
        container,
        derive(container, POLICY),
        policy=POLICY,
        consul=ConsulView(owned={service.id: stale}),
    )

    assert "    in Consul: registered, up to date" in same.splitlines()
    assert "    in Consul: registered, differs (will be updated)" in differs.splitlines()


def test_report_shows_checks_and_an_unreachable_consul() -> None:
    container = Container(ContainerID("c" * 64), "job", "worker", running=False, status="exited")
    service = Service(
        ServiceID("h:api:80"),
        "api",
        "",
        80,
        checks=(
            Check(
                "service:h:api:80:http",
                "http",
                "http",
                (("HTTP", "http://x/"), ("Interval", "10s")),
            ),
        ),
    )
    derivation = derive(container, POLICY)
    consul = ConsulView(error="GET /v1/agent/self: connection refused")

    text = report(container, derivation, policy=Policy("h"), consul=consul)
    with_service = report(
        container, type(derivation)(services=(service,)), policy=Policy("h"), consul=consul
    )

    assert "image worker, exited" in text
    assert "the Consul agent did not answer (GET /v1/agent/self: connection refused)" in text
    assert "services: none" in text
    assert "  container: not running (registrator registers running containers only)" in text
    assert "    check    http: HTTP=http://x/ Interval=10s" in with_service
    assert "    in Consul: unknown (Consul did not answer)" in with_service


def test_an_ip_option_is_named_as_the_address_source() -> None:
    container = shop()
    policy = Policy("h", host_ip="192.0.2.1")

    text = report(container, derive(container, policy), policy=policy, consul=ConsulView())

    assert "published ports are registered at 192.0.2.1 (--ip)" in text
    assert "    address  192.0.2.1:32768" in text


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("127.0.0.1:9181", "http://127.0.0.1:9181"),
        (":9181", "http://127.0.0.1:9181"),
        ("0.0.0.0:9181", "http://127.0.0.1:9181"),
        ("[::]:9181", "http://[::1]:9181"),
        ("10.0.0.5:80", "http://10.0.0.5:80"),
    ],
)
def test_healthcheck_asks_the_local_daemon(address: str, url: str) -> None:
    assert _local_url(address) == url


def test_healthcheck_without_a_metrics_addr_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REGISTRATOR_METRICS_ADDR", raising=False)

    assert subcommand(["healthcheck"]) == 1
    assert "no --metrics-addr" in capsys.readouterr().out


def test_sub_commands_report_usage_errors_like_the_daemon(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert subcommand(["healthcheck", "--metrics-addr", "nonsense"]) == 2
    assert "--metrics-addr" in capsys.readouterr().err
    assert subcommand(["explain"]) == 2
    assert "CONTAINER must come last" in capsys.readouterr().err
    assert subcommand(["explain", "web", "--internal"]) == 2
    assert subcommand(["explain", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: registrator explain")


def test_report_shows_the_whole_definition() -> None:
    container = Container(
        ContainerID("0123456789abcdef"),
        "api",
        "api",
        env={
            "SERVICE_PORT": "9100",
            "SERVICE_ADDRESS_FAMILY": "ipv6",
            "SERVICE_WEIGHT_PASSING": "10",
            "SERVICE_ENABLE_TAG_OVERRIDE": "true",
            "SERVICE_CHECK_HTTP": "/health",
            "SERVICE_CHECK_PORT": "8081",
            "SERVICE_CHECK_SUCCESS_BEFORE_PASSING": "2",
        },
        networks={"net": NetworkAddress("172.31.0.2", "fd00::2")},
    )
    policy = Policy("h", internal=True)

    text = report(container, derive(container, policy), policy=policy, consul=ConsulView())

    assert text.splitlines()[5:13] == [
        "  h:api:9100",
        "    name     api",
        "    address  [fd00::2]:9100",
        "    tagged   lan_ipv4=172.31.0.2:9100, lan_ipv6=[fd00::2]:9100",
        "    weights  passing 10, warning 1",
        "    tag override on: tags edited in the catalog are kept, never compared",
        "    meta     registrator_host=h",
        "    check    api HTTP: HTTP=http://[fd00::2]:8081/health Interval=10s"
        " SuccessBeforePassing=2",
    ]
