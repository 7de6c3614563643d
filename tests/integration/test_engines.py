"""The lifecycle contract against both engines: the machine's Docker and a real Podman 4.3.

One set of tests, parametrised by `engine`: the same registrator CLI, pointed at Docker's
socket or at Podman's (`DOCKER_HOST=unix:///…/podman.sock`), the containers made through each
engine's Docker-compatible API with docker-py. Where Podman cannot do what Docker does (drain
before stop), the test holds it to what the README says it does instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import docker
import pytest

from harness import ConsulDevAgent, PodmanService, RegistratorProcess, wait_until
from registrator.core.drain import DRAINING
from tests.integration.support import Containers, StartRegistrator, registered

#: Published on loopback only.
LOOPBACK: dict[int | str, Any] = {80: ("127.0.0.1",)}
SECOND = 1_000_000_000
#: the deadline for what a loaded 2-core machine does in a moment
WAIT = 60
#: engine calls in flight at once in a burst
BURST_CALLS = 8


@dataclass
class Engine:
    """An engine under test: containers made through it, and how registrator reaches it."""

    name: str
    containers: Containers
    #: registrator's environment for this engine (`DOCKER_HOST`)
    env: dict[str, str] = field(default_factory=dict)
    #: runs a container's HEALTHCHECK once where the engine does not on its own
    probe: Callable[[str], None] = lambda _container: None

    def registrator(
        self, start: StartRegistrator, consul: ConsulDevAgent, identity: str, *args: str
    ) -> RegistratorProcess:
        reg = start(consul.uri, "--hostname", identity, *args, env=self.env)
        reg.wait_for_log("docker.events.subscribed", timeout=WAIT)
        return reg

    def service_id(self, identity: str, container: str) -> str:
        return f"{identity}:{self.containers.name(container)}:80"


@pytest.fixture(params=["docker", "podman"])
def engine(request: pytest.FixtureRequest, docker_api: docker.APIClient) -> Iterator[Engine]:
    if request.param == "docker":
        made = Containers(docker_api)
        found = Engine("docker", made)
    else:
        podman: PodmanService = request.getfixturevalue("podman")
        made = Containers(podman.api)
        found = Engine("podman", made, env={"DOCKER_HOST": podman.host}, probe=podman.healthcheck)
    yield found
    made.remove_all()


def gone(consul: ConsulDevAgent, *service_ids: str) -> None:
    wait_until(
        lambda: not set(service_ids) & set(consul.services()),
        timeout=WAIT,
        what=f"{service_ids} deregistered",
    )


def maintenance(consul: ConsulDevAgent, service_id: str) -> str | None:
    check = (consul.get("/v1/agent/checks") or {}).get(f"_service_maintenance:{service_id}")
    return None if check is None else str(check["Notes"])


def test_a_published_port_is_registered_and_deregistered_when_it_stops(
    engine: Engine, consul: ConsulDevAgent, start_registrator: StartRegistrator, identity: str
) -> None:
    reg = engine.registrator(start_registrator, consul, identity)
    web = engine.containers.run(ports=LOOPBACK, env={"SERVICE_TAGS": "a,b"})
    service_id = engine.service_id(identity, web)
    registered(consul, service_id)

    service = consul.services()[service_id]
    assert (service["Address"], service["Port"]) == ("127.0.0.1", engine.containers.host_port(web))
    assert (service["Service"], service["Tags"]) == ("busybox", ["a", "b"])

    engine.containers.api.stop(web, timeout=1)
    gone(consul, service_id)
    assert "Traceback" not in reg.log


def test_a_stop_drains_on_docker_and_deregisters_at_death_on_podman(
    engine: Engine, consul: ConsulDevAgent, start_registrator: StartRegistrator, identity: str
) -> None:
    reg = engine.registrator(start_registrator, consul, identity)
    web = engine.containers.run(ports=LOOPBACK, create={"stop_timeout": 5})  # ignores SIGTERM
    service_id = engine.service_id(identity, web)
    registered(consul, service_id)

    engine.containers.api.kill(web, signal="SIGTERM")  # what a stop sends first
    if engine.name == "docker":
        wait_until(lambda: maintenance(consul, service_id) == DRAINING, what="drained")
        assert reg.log.count("docker.limitation") == 0
    else:  # no kill event names a signal: nothing to drain on (README, logged at start-up)
        marker = engine.containers.run(ports=LOOPBACK)  # registered: every event before handled
        registered(consul, engine.service_id(identity, marker))
        assert maintenance(consul, service_id) is None
        assert reg.log.count("docker.limitation") == 2
        assert "drain before stop does not start" in reg.log
    engine.containers.api.stop(web, timeout=1)
    gone(consul, service_id)


#: serves, then exits 3 once /tmp/exit exists
FAILS_ON_DEMAND = [
    "sh",
    "-c",
    "httpd -p 80 -h /www; until [ -e /tmp/exit ]; do sleep 0.1; done; exit 3",
]


def test_on_success_keeps_a_failed_container_by_the_exit_code_the_engine_reports(
    engine: Engine, consul: ConsulDevAgent, start_registrator: StartRegistrator, identity: str
) -> None:
    reg = engine.registrator(start_registrator, consul, identity, "-deregister", "on-success")
    failing = engine.containers.run(FAILS_ON_DEMAND, ports=LOOPBACK)
    killed = engine.containers.run(ports=LOOPBACK)
    ids = {c: engine.service_id(identity, c) for c in (failing, killed)}
    registered(consul, *ids.values())

    engine.containers.exec(failing, "touch", "/tmp/exit")
    engine.containers.api.kill(killed)  # SIGKILL: an exit by a signal (137)
    gone(consul, ids[killed])
    kept = f"container.exited_kept container={engine.containers.name(failing)}"
    reg.wait_for_log(kept, timeout=WAIT)
    assert ids[failing] in consul.services()


def test_pause_is_maintenance_and_unpause_lifts_it(
    engine: Engine, consul: ConsulDevAgent, start_registrator: StartRegistrator, identity: str
) -> None:
    engine.registrator(start_registrator, consul, identity)
    web = engine.containers.run(ports=LOOPBACK)
    service_id = engine.service_id(identity, web)
    registered(consul, service_id)

    engine.containers.api.pause(web)
    wait_until(lambda: maintenance(consul, service_id) is not None, what="maintenance on")
    engine.containers.api.unpause(web)
    wait_until(lambda: maintenance(consul, service_id) is None, what="maintenance off")
    assert service_id in consul.services()


def test_the_engines_healthcheck_is_mirrored(
    engine: Engine, consul: ConsulDevAgent, start_registrator: StartRegistrator, identity: str
) -> None:
    engine.registrator(start_registrator, consul, identity)
    health = {"test": ["CMD-SHELL", "cat /tmp/healthy"], "interval": SECOND, "retries": 1}
    web = engine.containers.run(ports=LOOPBACK, healthcheck=health)
    check_id = f"service:{engine.service_id(identity, web)}:docker-health"

    def status(wanted: str) -> bool:
        engine.probe(web)  # Podman: what its systemd timer would do
        check = (consul.get("/v1/agent/checks") or {}).get(check_id) or {}
        return check.get("Status") == wanted

    wait_until(lambda: status("critical"), timeout=WAIT, interval=0.5, what="starting")
    engine.containers.exec(web, "sh", "-c", "echo ready > /tmp/healthy")
    wait_until(lambda: status("passing"), timeout=WAIT, interval=0.5, what="healthy")
    engine.containers.exec(web, "rm", "/tmp/healthy")
    wait_until(lambda: status("critical"), timeout=WAIT, interval=0.5, what="unhealthy")


#: 50 containers made, registered, half removed and the rest removed at teardown: minutes on a
#: loaded 2-core machine, and a teardown cut short would leave containers for later tests
@pytest.mark.timeout(600)
def test_a_burst_of_fifty_leaves_exactly_the_running_ones(
    engine: Engine, consul: ConsulDevAgent, start_registrator: StartRegistrator, identity: str
) -> None:
    engine.registrator(start_registrator, consul, identity)
    with ThreadPoolExecutor(BURST_CALLS) as pool:
        made = list(pool.map(lambda _: engine.containers.run(ports=LOOPBACK), range(50)))
    ids = {c: engine.service_id(identity, c) for c in made}
    registered(consul, *ids.values())

    stopped, kept = made[::2], made[1::2]
    with ThreadPoolExecutor(BURST_CALLS) as pool:
        list(pool.map(lambda c: engine.containers.api.remove_container(c, force=True), stopped))

    wait_until(
        lambda: set(consul.services(owner=identity)) == {ids[c] for c in kept},
        timeout=WAIT * 3,
        what="exactly the running ones",
    )


def _full_passes(reg: RegistratorProcess) -> list[str]:
    return [line for line in reg.log.splitlines() if "reconcile.done scope=full" in line]


def _writes(line: str) -> int:
    found = re.findall(r" (?:registered|updated|deregistered)=(\d+)", line)
    return sum(map(int, found))


def test_a_restarted_registrator_adopts_what_runs_with_no_write(
    engine: Engine, consul: ConsulDevAgent, start_registrator: StartRegistrator, identity: str
) -> None:
    args = ("--resync-interval", "0.5")
    first = engine.registrator(start_registrator, consul, identity, *args)
    made = [engine.containers.run(ports=LOOPBACK) for _ in range(3)]
    registered(consul, *(engine.service_id(identity, c) for c in made))
    before = consul.services(owner=identity)
    assert first.process is not None
    first.process.kill()
    first.process.wait()

    second = engine.registrator(start_registrator, consul, identity, *args)
    wait_until(lambda: len(_full_passes(second)) >= 3, timeout=WAIT, what="three full passes")

    passes = _full_passes(second)
    assert [_writes(line) for line in passes] == [0] * len(passes)
    assert consul.services(owner=identity) == before
