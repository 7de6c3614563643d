"""Swarm mode against a real single-node swarm on the machine's own Docker daemon.

The node becomes a swarm manager only for this module (`docker swarm init --advertise-addr
127.0.0.1`) and leaves it at the module's end, only when a test session made it one and no
other session (a second copy of the suite on the same daemon) still uses it: `shared_swarm`.
Services, their task containers and the overlay network carry the session label and are
removed at teardown. No registry is reachable here, so services
run the local test images by name with `--no-resolve-image`. The routing mesh (ingress) is not
relied on: it may not answer on these machines (no IPVS).
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
import pytest

from harness import ROOT, TEST_LABEL, ConsulDevAgent, PrivateDockerd, wait_until
from registrator.core.model import ContainerID
from registrator.docker.engine import DockerEngine
from tests.integration.support import SESSION, Containers, StartRegistrator, run_registrator

#: Swarm's own bridge between a node's tasks and its host; `docker swarm leave` keeps it.
GWBRIDGE = "docker_gwbridge"


def docker_cli(*args: str) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@dataclass
class Swarm:
    """The swarm this module runs in: an attachable overlay network and the services made."""

    api: docker.APIClient
    network: str
    services: list[str] = field(default_factory=list)

    def create(self, *args: str, replicas: int = 1, image: str, network: bool = True) -> str:
        """`docker service create` of the test image's web server; returns the service name."""
        name = f"rt-sw-{uuid.uuid4().hex[:8]}"
        self.services.append(name)
        docker_cli(
            "service", "create", "--detach", "--no-resolve-image", "--name", name,
            "--replicas", str(replicas), "--label", f"{TEST_LABEL}={SESSION}",
            "--container-label", f"{TEST_LABEL}={SESSION}", "--update-delay", "0s",
            "--stop-grace-period", "1s", "--init",
            *(("--network", self.network) if network else ()), *args,
            image, "httpd", "-f", "-p", "80", "-h", "/www",
        )  # fmt: skip
        return name

    def update(self, service: str, *args: str) -> None:
        docker_cli("service", "update", "--detach", "--no-resolve-image", *args, service)

    def tasks(self, service: str) -> list[dict[str, Any]]:
        """The running task containers of `service` on this node, inspected."""
        rows = self.api.containers(filters={**_tasks_of(service), "status": "running"})
        return [self.api.inspect_container(row["Id"]) for row in rows]

    def running(self, service: str, count: int) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]] | None:
            tasks = self.tasks(service)
            return tasks if len(tasks) == count else None

        return wait_until(found, timeout=30, what=f"{count} running tasks of {service}")

    def remove(self, *services: str) -> None:
        """`docker service rm`, until no task runs: a test's `--resync` must not see another
        test's tasks stopping. Their containers go a little later (the module's teardown waits
        for that once, not every test)."""
        docker_cli("service", "rm", *services)

        def stopped() -> bool:
            return not any(self.tasks(service) for service in services)

        wait_until(stopped, timeout=30, what=f"no task of {', '.join(services)} running")


def _tasks_of(service: str) -> dict[str, str]:
    return {"label": f"com.docker.swarm.service.name={service}"}


@pytest.fixture
def swarm(swarm_node: Swarm) -> Iterator[Swarm]:
    """The module's swarm; the services a test creates are removed when it ends."""
    made = Swarm(swarm_node.api, swarm_node.network)
    yield made
    current = {s["Spec"]["Name"] for s in made.api.services()}
    if leftover := [s for s in made.services if s in current]:
        made.remove(*leftover)


@pytest.fixture(scope="module")
def swarm_node(docker_api: docker.APIClient) -> Iterator[Swarm]:
    """A swarm manager for this module: made by the first test session on this machine that
    needs one (unless the node already is one), and left by the last (see `shared_swarm`)."""
    with shared_swarm(docker_api):
        name = f"rt-overlay-{uuid.uuid4().hex[:8]}"
        labels = {TEST_LABEL: SESSION}
        docker_api.create_network(name, driver="overlay", attachable=True, labels=labels)
        made = Swarm(docker_api, name)
        try:
            yield made
        finally:
            _clean_up(made)


#: Several test sessions may share one daemon, so its swarm too: each holds this file locked
#: (shared) while it uses the swarm, and takes it exclusively to make or leave one.
SWARM_LOCK = Path(tempfile.gettempdir()) / "registrator-test-swarm.lock"
#: Present while the swarm was made by a test session (not there before): the last session
#: using it leaves it. It says whether Swarm's bridge was there before that.
SWARM_MADE = Path(tempfile.gettempdir()) / "registrator-test-swarm.made"


@contextlib.contextmanager
def shared_swarm(api: docker.APIClient) -> Iterator[None]:
    with SWARM_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = api.info()["Swarm"]
        if state.get("LocalNodeState") == "inactive":
            had_gwbridge = bool(api.networks(names=[GWBRIDGE]))
            docker_cli("swarm", "init", "--advertise-addr", "127.0.0.1")
            SWARM_MADE.write_text("had-gwbridge" if had_gwbridge else "")
        else:
            assert state.get("ControlAvailable"), f"this node is in a swarm, not a manager: {state}"
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            _leave_if_last(api, lock)


def _leave_if_last(api: docker.APIClient, lock: IO[str]) -> None:
    """Leave the swarm when a test session made it and no other session uses it any more."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another session still uses it: the last one leaves it
    if not SWARM_MADE.exists():
        return
    had_gwbridge = SWARM_MADE.read_text() == "had-gwbridge"
    docker_cli("swarm", "leave", "--force")
    SWARM_MADE.unlink()
    if not had_gwbridge:
        wait_until(lambda: _removed(api, GWBRIDGE), timeout=30, what=f"{GWBRIDGE} removed")


def _clean_up(swarm: Swarm) -> None:
    api = swarm.api
    for service in api.services(filters={"label": f"{TEST_LABEL}={SESSION}"}):
        api.remove_service(service["ID"])
    mine = {"label": f"{TEST_LABEL}={SESSION}"}
    wait_until(
        lambda: (
            not any(
                "com.docker.swarm.task.id" in (row.get("Labels") or {})
                for row in api.containers(all=True, filters=mine)
            )
        ),
        timeout=30,
        what="this session's task containers gone",
    )
    with contextlib.suppress(docker.errors.NotFound):
        wait_until(lambda: _removed(api, swarm.network), timeout=30, what="overlay removed")


def _removed(api: docker.APIClient, network: str) -> bool:
    """Remove `network`; False while Docker still holds endpoints on it (it lets go shortly)."""
    try:
        api.remove_network(network)
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError:
        return False
    return True


def services_of(consul: ConsulDevAgent, identity: str, name: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in consul.services(owner=identity).items() if v["Service"] == name}


def registered(
    consul: ConsulDevAgent, identity: str, name: str, count: int
) -> list[dict[str, Any]]:
    """Wait until exactly `count` services named `name` are registered; them, by ID."""

    def found() -> list[dict[str, Any]] | None:
        services = services_of(consul, identity, name)
        return sorted(services.values(), key=lambda s: s["ID"]) if len(services) == count else None

    return wait_until(found, timeout=30, what=f"{count} services {name}")


def overlay_addresses(tasks: list[dict[str, Any]], network: str) -> set[str]:
    return {t["NetworkSettings"]["Networks"][network]["IPAddress"] for t in tasks}


def spied_engine(env: dict[str, str] | None = None) -> tuple[DockerEngine, list[str]]:
    """A real engine whose requests that only a swarm needs are counted (and made)."""
    engine = DockerEngine.connect(env=env)
    calls: list[str] = []
    real = engine._get
    swarm_only = {"/info": "info", "/networks": "networks", "/services/": "inspect_service"}

    def spy(path: str, **kwargs: Any) -> Any:
        calls.extend(name for prefix, name in swarm_only.items() if path.startswith(prefix))
        return real(path, **kwargs)

    engine._get = spy  # type: ignore[method-assign]
    return engine, calls


def test_outside_a_swarm_a_plain_container_costs_no_extra_docker_call(
    private_dockerd: PrivateDockerd,
) -> None:
    """On a dockerd of the test's own: the machine's may be in another session's swarm."""
    engine, calls = spied_engine({"DOCKER_HOST": private_dockerd.host})
    web = Containers(private_dockerd.api).run(network_mode=private_dockerd.network())
    try:
        stream = engine.events()
        found = engine.inspect(ContainerID(web))
        stream.close()
    finally:
        engine.close()

    assert found is not None
    assert found.swarm is None
    assert calls == []


def test_a_manager_is_asked_once_per_subscription_and_each_service_per_task(
    swarm: Swarm, exposing_image: str
) -> None:
    web = swarm.create("--label", "SERVICE_TAGS=blue", replicas=2, image=exposing_image)
    first, second = swarm.running(web, 2)
    engine, calls = spied_engine()
    try:
        stream = engine.events()
        tasks = [engine.inspect(ContainerID(t["Id"])) for t in (first, second)]
        stream.close()
        engine.events().close()  # a reconnect: the node is asked again
        engine.inspect(ContainerID(first["Id"]))
    finally:
        engine.close()

    once = ["info", "networks"]
    assert calls == [*once, "inspect_service", "inspect_service", *once, "inspect_service"]
    for found in tasks:
        assert found is not None
        assert found.swarm is not None
        assert found.swarm.service_labels == {"SERVICE_TAGS": "blue", TEST_LABEL: SESSION}
        assert found.swarm.ingress == ()  # on the overlay network only


def test_replicas_register_at_their_overlay_addresses_and_follow_scale_label_update_and_rm(
    consul: ConsulDevAgent,
    swarm: Swarm,
    exposing_image: str,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    start_registrator(consul.uri, "--hostname", identity)
    web = swarm.create("--label", "SERVICE_TAGS=blue", replicas=3, image=exposing_image)
    tasks = swarm.running(web, 3)

    found = registered(consul, identity, web, 3)
    assert {s["Address"] for s in found} == overlay_addresses(tasks, swarm.network)
    assert {s["Port"] for s in found} == {80}
    assert all(s["Tags"] == ["blue"] for s in found)
    assert {s["Meta"]["swarm_slot"] for s in found} == {"1", "2", "3"}
    assert {s["Meta"]["swarm_task"] for s in found} == {
        t["Config"]["Labels"]["com.docker.swarm.task.id"] for t in tasks
    }
    assert {s["Meta"]["swarm_service"] for s in found} == {web}

    swarm.update(web, "--replicas", "1")
    [task] = swarm.running(web, 1)
    [remaining] = registered(consul, identity, web, 1)
    assert remaining["Address"] == overlay_addresses([task], swarm.network).pop()

    swarm.update(web, "--label-add", "SERVICE_TAGS=green", "--label-add", "SERVICE_TIER=web")
    retagged = wait_until(
        lambda: [s for s in services_of(consul, identity, web).values() if s["Tags"] == ["green"]],
        what="re-tagged by the label update",
    )
    assert retagged[0]["ID"] == remaining["ID"]  # the same task: not restarted
    assert retagged[0]["Meta"]["tier"] == "web"
    assert [t["Id"] for t in swarm.running(web, 1)] == [task["Id"]]

    swarm.update(web, "--label-rm", "SERVICE_TIER")
    wait_until(
        lambda: [s for s in registered(consul, identity, web, 1) if "tier" not in s["Meta"]],
        what="Meta tier gone with its label",
    )

    swarm.remove(web)
    wait_until(lambda: not services_of(consul, identity, web), what="nothing left after rm")


def test_host_mode_port_ignore_and_a_task_on_the_routing_mesh_only(
    consul: ConsulDevAgent, swarm: Swarm, exposing_image: str, identity: str
) -> None:
    # Docker picks both published ports (a host port for mode=host, one of the mesh's own)
    host_mode = swarm.create(
        "--publish", "target=80,mode=host", image=exposing_image, network=False
    )
    ignored = swarm.create("--container-label", "SERVICE_IGNORE=true", image=exposing_image)
    mesh_only = swarm.create("--publish", "target=80", image=exposing_image, network=False)
    for service in (ignored, mesh_only):
        swarm.running(service, 1)
    [task] = swarm.running(host_mode, 1)
    port = int(task["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])

    done = run_registrator("--resync", "--hostname", identity, consul.uri)

    assert done.returncode == 0, done.stderr
    [published] = services_of(consul, identity, host_mode).values()
    assert (published["Address"], published["Port"]) == ("127.0.0.1", port)
    assert not services_of(consul, identity, ignored)
    assert not services_of(consul, identity, mesh_only)
    [line] = [ln for ln in done.stderr.splitlines() if f"container={mesh_only}." in ln]
    assert "container.bad_declaration" in line
    assert "no network but the routing mesh (ingress)" in line


def test_a_restarted_registrator_writes_nothing_and_dry_run_shows_the_tasks(
    consul: ConsulDevAgent,
    swarm: Swarm,
    exposing_image: str,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    web = swarm.create("--label", "SERVICE_TAGS=blue", replicas=2, image=exposing_image)
    tasks = swarm.running(web, 2)

    dry = run_registrator("--resync", "--dry-run", "--hostname", identity, consul.uri)
    assert dry.returncode == 0, dry.stderr
    planned = [ln for ln in dry.stdout.splitlines() if ln.startswith("would register")]
    assert len(planned) == 2
    assert all(web in ln for ln in planned)
    assert not consul.services(owner=identity)

    first = start_registrator(consul.uri, "--hostname", identity)
    before = registered(consul, identity, web, 2)
    first.wait_for_log("reconcile.done scope=full")
    first.stop()
    second = start_registrator(consul.uri, "--hostname", identity)
    second.wait_for_log("reconcile.done scope=full")

    done = re.findall(r"reconcile\.done scope=full .*", second.log)[0]
    assert "registered=0 updated=0 deregistered=0" in done
    assert registered(consul, identity, web, 2) == before
    assert len(consul.services(owner=identity)) == 2
    assert {t["Id"] for t in swarm.running(web, 2)} == {t["Id"] for t in tasks}


def test_explain_shows_the_swarm_service_slot_and_task(
    consul: ConsulDevAgent, swarm: Swarm, exposing_image: str, identity: str
) -> None:
    web = swarm.create("--label", "SERVICE_TAGS=blue", image=exposing_image)
    [task] = swarm.running(web, 1)
    labels = task["Config"]["Labels"]

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "registrator",
            "explain",
            "--hostname",
            identity,
            consul.uri,
            task["Id"],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    service_id = labels["com.docker.swarm.service.id"]
    task_id = labels["com.docker.swarm.task.id"]
    assert lines[1] == f"swarm service {web} ({service_id[:12]}), slot 1, task {task_id}"
    assert lines[2] == f"swarm service labels: SERVICE_TAGS=blue, {TEST_LABEL}={SESSION}"
    assert f"    name     {web}" in lines
    assert "    tags     blue" in lines


def test_no_swarm_label_leaks_to_a_plain_container(
    consul: ConsulDevAgent, swarm: Swarm, containers: Containers, identity: str
) -> None:
    """On a swarm node, a plain container is registered exactly as before: by image name."""
    del swarm
    web = containers.run(ports={80: 0})

    done = run_registrator("--resync", "--hostname", identity, consul.uri)

    assert done.returncode == 0, done.stderr
    service = consul.services(owner=identity)[f"{identity}:{containers.name(web)}:80"]
    assert service["Service"] == "busybox"  # the image's name, as everywhere else
    assert not any(k.startswith("swarm_") for k in service["Meta"])
