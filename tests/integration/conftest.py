"""Fixtures for the integration suite: the real Docker daemon and a real Consul agent.

Nothing here fakes either. The suite fails (never skips) when the stack is missing: the test
command brings it up first. Every container is labelled with this session's id and removed at
teardown; Consul agents are the suite's own, on free ports, so nothing else is touched.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness import ROOT, TEST_IMAGE, TEST_LABEL, ConsulDevAgent, RegistratorProcess

SESSION = uuid.uuid4().hex[:12]
#: Registrator sees every container on the host, and other test runs may have containers of
#: their own there; these options restrict a registrator under test to this run's containers.
ISOLATION = ("--require-label", f"{TEST_LABEL}={SESSION}")


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    api = docker.APIClient(**docker.utils.kwargs_from_env())
    api.ping()
    api.inspect_image(TEST_IMAGE)  # built by scripts/stack.sh image
    yield api
    mine = {"label": f"{TEST_LABEL}={SESSION}"}
    for row in api.containers(all=True, filters=mine):
        api.remove_container(row["Id"], force=True)
    for network in api.networks(filters=mine):
        api.remove_network(network["Id"])
    api.close()


@pytest.fixture(scope="session")
def exposing_image(docker_api: docker.APIClient) -> Iterator[str]:
    """The test image with `EXPOSE 80`: the only way a `container:<id>` container has a port."""
    repository = "registrator-test/exposes-80"
    base = docker_api.create_container(TEST_IMAGE, command=["true"], labels={TEST_LABEL: SESSION})
    docker_api.commit(base["Id"], repository=repository, tag=SESSION, changes=["EXPOSE 80/tcp"])
    docker_api.remove_container(base["Id"])
    yield f"{repository}:{SESSION}"
    docker_api.remove_image(f"{repository}:{SESSION}", force=True)


@pytest.fixture(scope="session")
def consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulDevAgent]:
    """One dev agent for the whole session; tests use their own host identities in it."""
    agent = ConsulDevAgent(tmp_path_factory.mktemp("consul")).start()
    yield agent
    agent.stop()


@pytest.fixture
def identity() -> str:
    """A host identity of this test's own, so its services never mix with another test's."""
    return f"test-{uuid.uuid4().hex[:8]}"


class Containers:
    """Starts labelled containers from the test image and removes them all at teardown."""

    def __init__(self, api: docker.APIClient) -> None:
        self.api = api
        self.ids: list[str] = []
        #: the names of every container this factory created, removed ones included
        self.names: set[str] = set()
        self.networks: list[str] = []

    def run(
        self,
        command: list[str] | None = None,
        *,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        ports: dict[int | str, Any] | None = None,
        expose: list[int | str] | None = None,
        name: str | None = None,
        image: str = TEST_IMAGE,
        healthcheck: dict[str, Any] | None = None,
        create: dict[str, Any] | None = None,
        **host_config: Any,
    ) -> str:
        """Start a container; `ports` are published (`"53/udp"` keys allowed), `expose` not.

        `create` holds further create_container arguments (an entrypoint, say).
        """
        host = self.api.create_host_config(port_bindings=ports or {}, **host_config)
        name = name or f"rt-{uuid.uuid4().hex[:10]}"
        self.names.add(name)
        created = self.api.create_container(
            image,
            command=command or ["httpd", "-f", "-p", "80", "-h", "/www"],
            environment=env or {},
            labels={**(labels or {}), TEST_LABEL: SESSION},
            ports=[_port_spec(p) for p in (*(ports or {}), *(expose or ()))],
            name=name,
            host_config=host,
            stop_timeout=1,
            healthcheck=healthcheck,
            **(create or {}),
        )
        self.ids.append(created["Id"])
        self.api.start(created["Id"])
        return str(created["Id"])

    def exec(self, container: str, *command: str) -> None:
        """Run `command` in the container and wait for it (a `docker exec`)."""
        self.api.exec_start(self.api.exec_create(container, list(command)))

    def inspect(self, container: str) -> dict[str, Any]:
        data: dict[str, Any] = self.api.inspect_container(container)
        return data

    def host_port(self, container: str, port: str = "80/tcp") -> int:
        bindings = self.inspect(container)["NetworkSettings"]["Ports"][port]
        return int(bindings[0]["HostPort"])

    def name(self, container: str) -> str:
        return str(self.inspect(container)["Name"]).lstrip("/")

    def address(self, container: str, network: str = "bridge") -> str:
        return str(self.inspect(container)["NetworkSettings"]["Networks"][network]["IPAddress"])

    def network(self) -> str:
        """A user-defined network of this test's own, labelled, removed at teardown."""
        name = f"rt-net-{uuid.uuid4().hex[:10]}"
        self.api.create_network(name, labels={TEST_LABEL: SESSION})
        self.networks.append(name)
        return name

    def remove_all(self) -> None:
        for container in self.ids:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(container, force=True)
        self.ids.clear()
        for network in self.networks:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_network(network)
        self.networks.clear()


def _port_spec(port: int | str) -> int | tuple[int, str]:
    """docker-py wants `(53, "udp")` where Docker says `53/udp`."""
    number, _, protocol = str(port).partition("/")
    return (int(number), protocol) if protocol else int(number)


@pytest.fixture
def containers(docker_api: docker.APIClient) -> Iterator[Containers]:
    made = Containers(docker_api)
    yield made
    made.remove_all()


def run_registrator(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (`--resync`, `explain`), limited to this run's containers."""
    return subprocess.run(
        [sys.executable, "-m", "registrator", *ISOLATION, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.fixture
def start_registrator(
    tmp_path: Path,
) -> Iterator[Callable[..., RegistratorProcess]]:
    started: list[RegistratorProcess] = []

    def start(
        *args: str, env: dict[str, str] | None = None, isolated: bool = True
    ) -> RegistratorProcess:
        """Run the CLI; `isolated` limits it to this session's containers (see ISOLATION)."""
        log = tmp_path / f"registrator-{len(started)}.log"
        argv = [*ISOLATION, *args] if isolated else list(args)
        if "--log-level" not in argv:
            argv = ["--log-level", "DEBUG", *argv]
        proc = RegistratorProcess(argv, log, env=env or {}).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        # pytest shows a test's teardown output only when the test failed
        print(f"--- {proc.log_path.name} ---\n{proc.log[-20000:]}")


@pytest.fixture
def resync_once() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`registrator --resync ARGS`: one reconcile and exit, so what it left out is final."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "registrator", "--resync", *ISOLATION, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            timeout=60,
            check=False,
        )

    return run
