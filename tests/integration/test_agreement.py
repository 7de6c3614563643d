"""`registrator explain` and the daemon cannot disagree: both call the same decision and plan.

The daemon runs until it has converged; `explain`, under the same options, must then find
nothing left to do for each container, and show the same addresses the agent holds.
"""

from __future__ import annotations

from harness import ConsulDevAgent, wait_until
from tests.integration.support import ISOLATION, Containers, StartRegistrator, run_registrator


def explain(*args: str) -> str:
    done = run_registrator("explain", *ISOLATION, *args, isolated=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def consul_lines(report: str) -> list[str]:
    return [line.strip() for line in report.splitlines() if line.strip().startswith("in Consul:")]


def test_explain_agrees_with_the_daemon_on_paused_peer_kept_and_bad_containers(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    exposing_image: str,
) -> None:
    options = ("--hostname", identity, "--deregister", "on-success", consul.uri)
    start_registrator(*options)
    paused = containers.run(ports={80: 0})
    pod = containers.run(ports={80: 0}, env={"SERVICE_IGNORE": "true"})
    app = containers.run(["sleep", "300"], image=exposing_image, network_mode=f"container:{pod}")
    bad = containers.run(ports={80: 0}, env={"SERVICE_BAD.KEY": "x", "SERVICE_REGION": "eu"})
    failing = containers.run(["sh", "-c", "sleep 2; exit 3"], ports={80: 0})
    ids = {c: f"{identity}:{containers.name(c)}:80" for c in (paused, app, bad, failing)}
    wait_until(lambda: set(ids.values()) <= set(consul.services()), what="all registered")
    containers.api.pause(paused)
    wait_until(
        lambda: containers.inspect(failing)["State"]["Status"] == "exited",
        timeout=30,
        what="the failing container exited",
    )
    maintenance = f"_service_maintenance:{ids[paused]}"
    wait_until(lambda: maintenance in consul.get("/v1/agent/checks"), what="paused in maint.")

    held = consul.services()
    for container, service_id in ids.items():
        report = explain(*options, containers.name(container))
        if container == failing:
            assert f"  {service_id}: kept as registered" in report.splitlines(), report
            assert service_id in held  # the daemon kept it too
            continue
        assert consul_lines(report) == ["in Consul: registered, up to date"], report
        address = f"{held[service_id]['Address']}:{held[service_id]['Port']}"
        assert f"    address  {address}" in report.splitlines(), report
    assert "    maintenance mode (container paused)" in explain(*options, containers.name(paused))
    assert held[ids[app]]["Port"] == containers.host_port(pod)
    assert "  SERVICE_BAD.KEY=x: not a Consul Meta key" in explain(*options, containers.name(bad))

    dry_run = run_registrator("--resync", "--dry-run", *options)
    assert dry_run.returncode == 0, dry_run.stderr
    assert [line for line in dry_run.stdout.splitlines() if line.startswith("would ")] == []
    assert "0 to register, 0 to deregister, 4 unchanged" in dry_run.stdout
