"""Fixtures for the integration suite: the real Docker daemon and a real Consul agent.

Nothing here fakes either. The suite fails (never skips) when the stack is missing: the test
command brings it up first. Every container is labelled with this session's id and removed at
teardown; Consul agents and private dockerds are the suite's own, so nothing else is touched.
What tests import (Containers, run_registrator, ISOLATION, ...) is in support.py.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from harness import (
    TEST_IMAGE,
    TEST_LABEL,
    ConsulDevAgent,
    PodmanService,
    PrivateDockerd,
    RegistratorProcess,
)
from harness.etcd import EtcdServer
from tests.integration.support import ISOLATION, SESSION, Containers, StartRegistrator


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    api = docker.APIClient(**docker.utils.kwargs_from_env())
    api.ping()
    api.inspect_image(TEST_IMAGE)  # built by scripts/stack.sh image
    yield api
    mine = {"label": f"{TEST_LABEL}={SESSION}"}
    for row in api.containers(all=True, filters=mine):
        with contextlib.suppress(docker.errors.NotFound):  # gone meanwhile (auto-removed)
            api.remove_container(row["Id"], force=True)
    for network in api.networks(filters=mine):
        with contextlib.suppress(docker.errors.NotFound):
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


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd server for the session; tests write under key prefixes of their own."""
    server = EtcdServer(tmp_path_factory.mktemp("etcd")).start()
    yield server
    server.stop()


@pytest.fixture
def identity() -> str:
    """A host identity of this test's own, so its services never mix with another test's."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def containers(docker_api: docker.APIClient) -> Iterator[Containers]:
    made = Containers(docker_api)
    yield made
    made.remove_all()


@pytest.fixture
def private_dockerd(docker_api: docker.APIClient) -> Iterator[PrivateDockerd]:
    """A dockerd of this test's own, holding the test image: restart it, break it, at will.

    Its containers need `network_mode=private_dockerd.network()` (it has no default bridge);
    point registrator at it with `env={"DOCKER_HOST": private_dockerd.host}`. At teardown its
    containers, network and directories go.
    """
    daemon = PrivateDockerd.new()
    try:
        daemon.start().load_image(TEST_IMAGE, source=docker_api)
        yield daemon
    finally:
        daemon.remove()


@pytest.fixture(scope="session")
def podman(docker_api: docker.APIClient) -> Iterator[PodmanService]:
    """A Podman API service of the session's own (its own conf, storage, network and socket),
    holding the test image: point registrator at it with `env={"DOCKER_HOST": podman.host}`."""
    service = PodmanService.new()
    try:
        service.start().load_image(TEST_IMAGE, source=docker_api)
        yield service
    finally:
        service.remove()


@pytest.fixture
def start_registrator(tmp_path: Path) -> Iterator[StartRegistrator]:
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
