"""Health checks against the real Consul agent and real containers: each kind's status."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest

from harness import ConsulDevAgent, wait_until
from tests.integration.support import Containers, StartRegistrator

SECOND = 1_000_000_000  # Docker's healthcheck durations are nanoseconds
HTTPD_IN_BACKGROUND = ["sh", "-c", "httpd -p 80 -h /www; exec sleep 300"]


@pytest.fixture(scope="module")
def script_consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulDevAgent]:
    """An agent that runs script and docker checks registered over its HTTP API."""
    agent = ConsulDevAgent(
        tmp_path_factory.mktemp("consul-scripts"), extra_config={"enable_script_checks": True}
    ).start()
    yield agent
    agent.stop()


def checks_of(consul: ConsulDevAgent, service_id: str) -> dict[str, dict[str, Any]]:
    return {
        check_id: check
        for check_id, check in (consul.get("/v1/agent/checks") or {}).items()
        if check.get("ServiceID") == service_id
    }


def status_of(consul: ConsulDevAgent, check_id: str) -> str | None:
    check = (consul.get("/v1/agent/checks") or {}).get(check_id)
    return None if check is None else str(check["Status"])


def wait_for_status(
    consul: ConsulDevAgent, check_id: str, status: str, *, output: str = "", timeout: float = 15
) -> dict[str, Any]:
    """The check once it has `status` (and `output` in its output, when given)."""

    def reached() -> dict[str, Any] | None:
        check = (consul.get("/v1/agent/checks") or {}).get(check_id)
        if check is None or check["Status"] != status or output not in check["Output"]:
            return None
        return dict(check)

    return wait_until(reached, timeout=timeout, what=f"{check_id} {status} {output!r}")


def started(start: StartRegistrator, consul: ConsulDevAgent, identity: str, *args: str) -> None:
    start(consul.uri, "--hostname", identity, *args).wait_for_log("docker.events.subscribed")


def test_http_check_passes_then_goes_critical_when_the_path_404s(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, consul, identity)
    env = {"SERVICE_CHECK_HTTP": "/index.html", "SERVICE_CHECK_INTERVAL": "1s"}
    web = containers.run(env=env, ports={80: 0})
    check_id = f"service:{identity}:{containers.name(web)}:80:http"

    check = wait_for_status(consul, check_id, "passing")
    assert check["Type"] == "http"
    assert check["Name"] == "busybox HTTP"

    containers.exec(web, "rm", "/www/index.html")
    check = wait_for_status(consul, check_id, "critical")
    assert "404" in check["Output"]


def bridge_gateway(containers: Containers) -> str:
    """A local address that is not loopback: Docker forwards it to the container itself.

    On 127.0.0.1 Docker's userland proxy accepts every connection to a published port, even
    with nothing listening in the container, so a TCP check there would always pass.

    A daemon that created its bridge on this boot reports no `Gateway` in the network's IPAM
    configuration; the bridge then has the subnet's first address, as Docker always gives it.
    """
    config = containers.api.inspect_network("bridge")["IPAM"]["Config"]
    ipv4 = next(c for c in config if ":" not in c["Subnet"])
    if ipv4.get("Gateway"):
        return str(ipv4["Gateway"])
    return str(next(ipaddress.ip_network(ipv4["Subnet"]).hosts()))


def test_tcp_check_passes_then_goes_critical_when_the_listener_stops(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, consul, identity, "--ip", bridge_gateway(containers))
    env = {"SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_INTERVAL": "1s"}
    web = containers.run(HTTPD_IN_BACKGROUND, env=env, ports={80: 0})
    check_id = f"service:{identity}:{containers.name(web)}:80:tcp"

    assert wait_for_status(consul, check_id, "passing")["Type"] == "tcp"

    containers.exec(web, "killall", "httpd")
    wait_for_status(consul, check_id, "critical")


def test_several_kinds_on_one_service_are_several_checks(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, consul, identity)
    env = {
        "SERVICE_CHECK_HTTP": "/missing",
        "SERVICE_CHECK_TCP": "true",
        "SERVICE_CHECK_INTERVAL": "1s",
    }
    web = containers.run(env=env, ports={80: 0})
    prefix = f"service:{identity}:{containers.name(web)}:80"

    wait_for_status(consul, f"{prefix}:tcp", "passing")
    wait_for_status(consul, f"{prefix}:http", "critical")
    assert sorted(checks_of(consul, f"{identity}:{containers.name(web)}:80")) == [
        f"{prefix}:http",
        f"{prefix}:tcp",
    ]


def test_ttl_check_starts_at_the_initial_status_and_is_left_to_the_application(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(
        consul.uri, "--hostname", identity, "--log-level", "DEBUG",
        env={"REGISTRATOR_AGENT_CHECK_INTERVAL": "0.2"},
    )  # fmt: skip
    env = {"SERVICE_CHECK_TTL": "30s", "SERVICE_CHECK_INITIAL_STATUS": "warning"}
    web = containers.run(env=env, ports={80: 0})
    check_id = f"service:{identity}:{containers.name(web)}:80"  # gliderlabs' TTL check ID

    assert wait_for_status(consul, check_id, "warning")["Type"] == "ttl"

    consul.request("PUT", f"/v1/agent/check/pass/{check_id}?note=app%20says%20ok")
    checks_done = reg.log.count("reconcile.done scope=agent")
    wait_until(lambda: reg.log.count("reconcile.done scope=agent") >= checks_done + 3)
    assert status_of(consul, check_id) == "passing"


def test_script_checks_are_refused_without_the_opt_in(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(consul.uri, "--hostname", identity)
    web = containers.run(env={"SERVICE_CHECK_SCRIPT": "true"}, ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"

    wait_until(lambda: service_id in consul.services(), what=service_id)
    assert checks_of(consul, service_id) == {}
    reg.wait_for_log("key=SERVICE_CHECK_SCRIPT value=true")
    line = next(x for x in reg.log.splitlines() if "key=SERVICE_CHECK_SCRIPT" in x)
    assert "container.bad_declaration" in line
    assert f"container={containers.name(web)}" in line
    assert "--enable-script-checks" in line


def test_script_and_docker_checks_run_with_the_opt_in(
    script_consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, script_consul, identity, "--enable-script-checks")
    env = {
        "SERVICE_CHECK_SCRIPT": "printf '%s|' 'two words' $SERVICE_IP $SERVICE_PORT",
        "SERVICE_CHECK_DOCKER": "cat /www/index.html",
        "SERVICE_CHECK_INTERVAL": "1s",
    }
    web = containers.run(env=env, ports={80: 0})
    prefix = f"service:{identity}:{containers.name(web)}:80"

    expected = f"two words|127.0.0.1|{containers.host_port(web)}|"
    script = wait_for_status(script_consul, f"{prefix}:script", "passing", output=expected)
    assert script["Output"] == expected
    wait_for_status(script_consul, f"{prefix}:docker", "passing", output="ok")


def test_a_bad_declaration_holds_its_check_critical_and_says_why(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(consul.uri, "--hostname", identity)
    env = {"SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_INTERVAL": "10"}
    web = containers.run(env=env, ports={80: 0})
    check_id = f"service:{identity}:{containers.name(web)}:80:tcp"

    check = wait_for_status(consul, check_id, "critical", output="SERVICE_CHECK_INTERVAL=10")
    assert check["Type"] == "ttl"
    assert "not a duration" in check["Output"]
    reg.wait_for_log("key=SERVICE_CHECK_INTERVAL value=10")
    assert reg.process is not None
    assert reg.process.poll() is None


def test_docker_healthcheck_is_mirrored_starting_healthy_unhealthy(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, consul, identity)
    web = containers.run(
        ports={80: 0},
        healthcheck={
            "test": ["CMD-SHELL", "cat /tmp/healthy"],
            "interval": SECOND,
            "timeout": SECOND,
            "retries": 1,
            "start_period": 60 * SECOND,  # failures while starting keep it `starting`
        },
    )
    check_id = f"service:{identity}:{containers.name(web)}:80:docker-health"

    starting = wait_for_status(consul, check_id, "critical")
    assert starting["Type"] == "ttl"
    assert containers.inspect(web)["State"]["Health"]["Status"] == "starting"

    containers.exec(web, "sh", "-c", "echo ready > /tmp/healthy")
    assert wait_for_status(consul, check_id, "passing", output="ready")["Output"] == "ready"

    containers.exec(web, "rm", "/tmp/healthy")
    wait_for_status(consul, check_id, "critical", output="/tmp/healthy")
    assert containers.inspect(web)["State"]["Health"]["Status"] == "unhealthy"


def test_docker_health_mirroring_can_be_turned_off_per_container_and_globally(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    healthcheck = {"test": ["CMD", "true"], "interval": SECOND}
    started(start_registrator, consul, identity, "--no-docker-health")
    globally_off = containers.run(ports={80: 0}, healthcheck=healthcheck)
    other = f"{identity}-per-container"
    started(start_registrator, consul, other)
    off_here = containers.run(
        ports={80: 0}, healthcheck=healthcheck, env={"SERVICE_CHECK_DOCKER_HEALTH": "false"}
    )

    services = [
        f"{identity}:{containers.name(globally_off)}:80",
        f"{other}:{containers.name(off_here)}:80",
    ]
    wait_until(lambda: set(services) <= set(consul.services()), what=f"{services}")
    assert [checks_of(consul, service_id) for service_id in services] == [{}, {}]


def test_checks_edited_or_removed_by_hand_are_put_back(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(
        consul.uri, "--hostname", identity, env={"REGISTRATOR_AGENT_CHECK_INTERVAL": "0.2"}
    )
    reg.wait_for_log("docker.events.subscribed")
    env = {"SERVICE_CHECK_HTTP": "/index.html", "SERVICE_CHECK_INTERVAL": "1s"}
    web = containers.run(env=env, ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"
    check_id = f"service:{service_id}:http"
    wait_for_status(consul, check_id, "passing")

    consul.request("PUT", f"/v1/agent/check/deregister/{check_id}")
    wait_for_status(consul, check_id, "passing")

    edited = {"ID": check_id, "Name": "edited", "ServiceID": service_id, "TTL": "1h"}
    consul.request("PUT", "/v1/agent/check/register", edited)

    def put_back() -> dict[str, Any] | None:
        check = checks_of(consul, service_id).get(check_id)
        return check if check is not None and check["Type"] == "http" else None

    assert wait_until(put_back, what="the edited check put back")["Name"] == "busybox HTTP"

    added = {"ID": "added-by-hand", "Name": "extra", "ServiceID": service_id, "TTL": "1h"}
    consul.request("PUT", "/v1/agent/check/register", added)
    wait_until(lambda: list(checks_of(consul, service_id)) == [check_id], what="extra removed")


def test_ttl_option_keeps_a_check_passing_that_expires_once_registrator_stops(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(
        consul.uri, "--hostname", identity, "-ttl", "2", "-ttl-refresh", "1",
        "--log-level", "DEBUG",
    )  # fmt: skip
    web = containers.run(ports={80: 0})
    check_id = f"service:{identity}:{containers.name(web)}:80:registrator"

    wait_for_status(consul, check_id, "passing")
    refreshed = reg.log.count(f"check.refreshed check={check_id}")
    wait_until(lambda: reg.log.count(f"check.refreshed check={check_id}") >= refreshed + 3)
    assert status_of(consul, check_id) == "passing"  # kept well past its 2s TTL

    reg.stop()
    assert wait_for_status(consul, check_id, "critical")["Output"].startswith("TTL expired")
