"""The command line as gliderlabs users wrote it, and every way of naming the agent."""

from __future__ import annotations

from harness import ConsulDevAgent
from tests.integration.support import (
    ISOLATION,
    Containers,
    StartRegistrator,
    registered_service,
    run_registrator,
)


def test_a_gliderlabs_command_line_runs_unchanged(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    app = containers.run(expose=[80], env={"SERVICE_TAGS": "web"})

    start_registrator(
        "-internal",
        "-resync",
        "30",
        "-tags",
        "prod",
        f"consul://127.0.0.1:{consul.http_port}",
        env={"REGISTRATOR_HOSTNAME": identity, "REGISTRATOR_REQUIRE_LABEL": ISOLATION[1]},
        isolated=False,
    )

    service = registered_service(consul, f"{identity}:{containers.name(app)}:80")
    assert (service["Address"], service["Port"]) == (containers.address(app), 80)
    assert service["Tags"] == ["web", "prod"]


def test_consul_http_addr_names_the_agent_when_no_uri_is_given(
    consul: ConsulDevAgent, containers: Containers, identity: str
) -> None:
    web = containers.run(ports={80: None})

    done = run_registrator(
        "--resync", "-hostname", identity, env={"CONSUL_HTTP_ADDR": consul.address}
    )

    assert done.returncode == 0, done.stderr
    assert f"{identity}:{containers.name(web)}:80" in consul.services()
