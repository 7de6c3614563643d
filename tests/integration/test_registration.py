"""The walking skeleton against the real Docker daemon and a real Consul agent."""

from __future__ import annotations

import subprocess
from typing import Any

from harness import ConsulDevAgent, wait_until
from tests.integration.support import Containers, StartRegistrator, run_registrator


def _service(consul: ConsulDevAgent, service_id: str) -> dict[str, Any] | None:
    return consul.services().get(service_id)


def test_published_port_is_registered_then_deregistered_on_stop(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(consul.uri, "--hostname", identity)
    reg.wait_for_log("docker.events.subscribed")
    web = containers.run(env={"SERVICE_NAME": "web", "SERVICE_TAGS": "blue,v2"}, ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"

    service = wait_until(lambda: _service(consul, service_id), what=service_id)

    assert service["Service"] == "web"
    assert service["Port"] == containers.host_port(web)
    assert service["Address"] == "127.0.0.1"  # the dev agent's advertise address
    assert service["Tags"] == ["blue", "v2"]
    assert service["Meta"] == {"registrator_host": identity}

    containers.api.stop(web, timeout=1)
    wait_until(lambda: service_id not in consul.services(), what=f"{service_id} gone")


def test_containers_running_before_start_up_are_registered_with_the_image_name(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    web = containers.run(ports={80: 0})
    start_registrator(consul.uri, "--hostname", identity)
    service_id = f"{identity}:{containers.name(web)}:80"

    service = wait_until(lambda: _service(consul, service_id), what=service_id)

    assert service["Service"] == "busybox"
    assert service["Port"] == containers.host_port(web)


def test_ignored_containers_and_unpublished_ports_are_not_registered(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    containers.run(env={"SERVICE_IGNORE": "true"}, ports={80: 0})
    containers.run(command=["sleep", "300"])
    marker = containers.run(env={"SERVICE_NAME": "marker"}, ports={80: 0})
    start_registrator(consul.uri, "--hostname", identity)

    # Once the marker, started last, is registered, the others have been considered too.
    wait_until(lambda: f"{identity}:{containers.name(marker)}:80" in consul.services())
    assert [s["Service"] for s in consul.services(owner=identity).values()] == ["marker"]


def test_services_of_others_are_never_touched(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    by_hand = {"ID": f"{identity}-by-hand", "Name": "by-hand", "Port": 1234}
    other_host = {
        "ID": f"{identity}-other:gone:80",
        "Name": "other",
        "Port": 80,
        "Meta": {"registrator_host": f"{identity}-other"},
    }
    stale_own = {
        "ID": f"{identity}:gone:80",
        "Name": "stale",
        "Port": 80,
        "Meta": {"registrator_host": identity},
    }
    for body in (by_hand, other_host, stale_own):
        consul.request("PUT", "/v1/agent/service/register", body)
    web = containers.run(ports={80: 0})
    reg = start_registrator(
        consul.uri, "--hostname", identity, "--resync-interval", "0.2", "--log-level", "DEBUG"
    )

    # start-up sweeps this identity's stale service and leaves the others alone
    wait_until(lambda: stale_own["ID"] not in consul.services(), what="stale service removed")
    containers.api.remove_container(web, force=True)
    wait_until(lambda: not consul.services(owner=identity), what="own services gone")
    resyncs = reg.log.count("reconcile.done scope=full")
    wait_until(lambda: reg.log.count("reconcile.done scope=full") >= resyncs + 2, what="resyncs")

    services = consul.services()
    assert by_hand["ID"] in services
    assert other_host["ID"] in services
    for body in (by_hand, other_host):
        consul.request("PUT", f"/v1/agent/service/deregister/{body['ID']}")


def test_resync_once_reports_and_exits_zero_when_consistent(
    consul: ConsulDevAgent,
    containers: Containers,
    identity: str,
) -> None:
    web = containers.run(ports={80: 0})

    def resync() -> subprocess.CompletedProcess[str]:
        return run_registrator("--resync", "--hostname", identity, consul.uri)

    first = resync()
    second = resync()

    assert first.returncode == 0, first.stderr
    assert "registered 1," in first.stdout
    assert f"{identity}:{containers.name(web)}:80" in consul.services()
    assert second.returncode == 0, second.stderr
    assert "registered 0, updated 0, deregistered 0, unchanged 1" in second.stdout
    containers.api.remove_container(web, force=True)
    third = resync()
    assert "deregistered 1," in third.stdout
    assert not consul.services(owner=identity)


def test_a_required_label_limits_what_a_full_pass_inspects(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    """Hundreds of other containers on a host cost nothing: only labelled ones are listed."""
    mine = containers.run(ports={80: 0}, labels={"org.registrator.test.only": identity})
    containers.run(ports={80: 0})  # carries the session label, not this test's
    only = f"org.registrator.test.only={identity}"
    reg = start_registrator(
        consul.uri, "--hostname", identity, "--require-label", only, isolated=False
    )

    wait_until(lambda: f"{identity}:{containers.name(mine)}:80" in consul.services())
    first_pass = next(line for line in reg.log.splitlines() if "scope=full" in line)
    assert " inspected=1 " in f"{first_pass} "
