"""`registrator explain CONTAINER` against the real Docker daemon and Consul agent."""

from __future__ import annotations

import subprocess

from harness import ConsulDevAgent
from tests.integration.support import Containers, run_registrator


def explain(*args: str) -> subprocess.CompletedProcess[str]:
    return run_registrator("explain", *args, isolated=False)


def test_explain_shows_services_skipped_ports_and_bad_keys_under_the_daemons_options(
    consul: ConsulDevAgent, containers: Containers, identity: str
) -> None:
    web = containers.run(
        env={
            "SERVICE_NAME": "explained",
            "SERVICE_BAD.KEY": "x",
            "SERVICE_REGION": "eu",
            "SERVICE_80_CHECK_HTTP": "/health",
        },
        ports={80: 0},
        expose=[8080],
    )
    name = containers.name(web)

    by_name = explain("--hostname", identity, "-tags", "fleet", consul.uri, name)
    by_id = explain("--hostname", identity, "-tags", "fleet", consul.uri, web[:12])

    assert by_name.returncode == 0, by_name.stderr
    assert by_id.stdout == by_name.stdout
    lines = by_name.stdout.splitlines()
    assert lines[0].startswith(f"container {name} ({web[:12]})")
    assert "published ports are registered at 127.0.0.1 (the Consul agent's address)" in lines[1]
    service = lines[lines.index("services (1):") + 1 :]
    port = containers.host_port(web)
    [check] = [line for line in service if line.startswith("    check    ")]
    assert f"HTTP=http://127.0.0.1:{port}/health" in check.split()
    assert [line for line in service if not line.startswith("    check    ")][:8] == [
        f"  {identity}:{name}:80",
        "    name     explained-80",  # two ports (one only exposed): the port is appended
        f"    address  127.0.0.1:{port}",
        f"    tagged   lan_ipv4=127.0.0.1:{port}",
        "    weights  passing 1, warning 1",
        "    tags     fleet",
        f"    meta     region=eu, registrator_host={identity}",
        "    in Consul: not registered (registrator registers it on its next pass over this"
        " container)",
    ]
    assert "  8080/tcp: exposed but not published" in "\n".join(lines)
    assert any(line.startswith("  SERVICE_BAD.KEY=x: not a Consul Meta key") for line in lines), (
        by_name.stdout
    )
    assert f"{identity}:{name}:80" not in consul.services()  # explain never writes


def test_explain_says_when_the_service_is_registered_and_up_to_date(
    consul: ConsulDevAgent, containers: Containers, identity: str
) -> None:
    web = containers.run(env={"SERVICE_NAME": "explained"}, ports={80: 0})
    name = containers.name(web)
    first = explain("--hostname", identity, consul.uri, name)
    consul.request(
        "PUT",
        "/v1/agent/service/register",
        {
            "ID": f"{identity}:{name}:80",
            "Name": "explained",
            "Address": "127.0.0.1",
            "Port": containers.host_port(web),
            "Meta": {"registrator_host": identity},
        },
    )

    second = explain("--hostname", identity, consul.uri, name)

    assert "in Consul: not registered" in first.stdout
    assert "in Consul: registered, up to date" in second.stdout, second.stdout


def test_explain_with_an_ip_option_and_no_consul_still_explains(
    containers: Containers, identity: str
) -> None:
    web = containers.run(ports={80: 0}, command=["sleep", "300"])

    result = explain("--hostname", identity, "-ip", "10.1.2.3", "consul://127.0.0.1:1", web)

    assert result.returncode == 0, result.stderr
    assert f"    address  10.1.2.3:{containers.host_port(web)}" in result.stdout
    assert "in Consul: unknown (Consul did not answer)" in result.stdout


def test_explain_of_a_missing_container_exits_1_with_one_line(identity: str) -> None:
    result = explain("--hostname", identity, f"no-such-container-{identity}")

    assert result.returncode == 1
    assert (
        result.stderr == f"registrator: error: no container 'no-such-container-{identity}'"
        " (name or ID)\n"
    )
