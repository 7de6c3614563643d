"""What the integration tests share besides fixtures: this run's isolation, its containers, the CLI.

The fixtures themselves are in conftest.py; tests import names from here, never from conftest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import uuid
from typing import Any, Protocol

import docker

from harness import (
    CLI,
    ROOT,
    TEST_IMAGE,
    TEST_LABEL,
    ConsulDevAgent,
    RegistratorProcess,
    wait_until,
)
from harness.ports import says_in_use

log = logging.getLogger(__name__)

SESSION = uuid.uuid4().hex[:12]
#: Registrator sees every container on the host, and other test runs may have containers of
#: their own there; these options restrict a registrator under test to this run's containers.
ISOLATION = ("--require-label", f"{TEST_LABEL}={SESSION}")
#: An engine picks a free host port when none is given, but neither engine holds it: Podman
#: finds one free, closes it and binds it again at start, so two containers of a burst (or any
#: other process) can take the same one. Such a start is retried with a new container, this
#: many times in all.
PORT_ATTEMPTS = 4


def run_registrator(
    *args: str, env: dict[str, str] | None = None, isolated: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (`--resync`, `explain`, `healthcheck`) and capture its output.

    `env` is merged into this process' environment. `isolated` limits it to this run's
    containers (see ISOLATION); a sub-command, which must come first, needs `isolated=False`.
    """
    return subprocess.run(
        [*CLI, *ISOLATION, *args] if isolated else [*CLI, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


class StartRegistrator(Protocol):
    """The `start_registrator` fixture: a long-running registrator, stopped at teardown."""

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, isolated: bool = True
    ) -> RegistratorProcess: ...


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

        `create` holds further create_container arguments (an entrypoint, a stop signal, a
        stop timeout other than 1 s, say).
        """
        host = self.api.create_host_config(port_bindings=ports or {}, **host_config)
        name = name or f"rt-{uuid.uuid4().hex[:10]}"
        self.names.add(name)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            created = self.api.create_container(
                image,
                command=command or ["httpd", "-f", "-p", "80", "-h", "/www"],
                environment=env or {},
                labels={**(labels or {}), TEST_LABEL: SESSION},
                ports=[_port_spec(p) for p in (*(ports or {}), *(expose or ()))],
                name=name,
                host_config=host,
                healthcheck=healthcheck,
                **{"stop_timeout": 1, **(create or {})},
            )
            self.ids.append(created["Id"])
            try:
                self.api.start(created["Id"])
                return str(created["Id"])
            except docker.errors.APIError as e:
                if attempt == PORT_ATTEMPTS or not _engine_chose(ports) or not says_in_use(str(e)):
                    raise
                log.warning("%s: its host port was taken (%s); creating it again", name, e)
                self.api.remove_container(created["Id"], force=True)
        raise AssertionError("unreachable")

    def exec(self, container: str, *command: str) -> None:
        """Run `command` in the container and wait for it (a `docker exec`)."""
        self.api.exec_start(self.api.exec_create(container, list(command)))

    def logs(self, container: str) -> str:
        """What the container wrote to stdout and stderr so far."""
        return bytes(self.api.logs(container)).decode(errors="replace")

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
        """Kill, then remove: Docker's forced removal kills at once, Podman's stops with the
        container's stop timeout first (a second each, for most containers here)."""
        for container in self.ids:
            with contextlib.suppress(docker.errors.APIError):  # gone, or not running
                self.api.kill(container)
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(container, force=True)
        self.ids.clear()
        for network in self.networks:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_network(network)
        self.networks.clear()


def _engine_chose(ports: dict[int | str, Any] | None) -> bool:
    """Whether every published port's host port is left to the engine (`0`, `None`, or an
    address alone, `("127.0.0.1",)`), the only case where creating the container again helps."""

    def chosen(binding: Any) -> bool:
        if isinstance(binding, tuple):
            return len(binding) == 1 or binding[1] in (0, None)
        return binding in (0, None)

    return bool(ports) and all(chosen(b) for b in (ports or {}).values())


def _port_spec(port: int | str) -> int | tuple[int, str]:
    """docker-py wants `(53, "udp")` where Docker says `53/udp`."""
    number, _, protocol = str(port).partition("/")
    return (int(number), protocol) if protocol else int(number)


def registered(
    agent: ConsulDevAgent, *service_ids: str, timeout: float = 60
) -> dict[str, dict[str, Any]]:
    """The agent's services once all of `service_ids` are among them (a generous deadline: the
    machine is shared and often loaded)."""

    def listed() -> dict[str, dict[str, Any]] | None:
        found = agent.services()
        return found if set(service_ids) <= set(found) else None

    return wait_until(listed, timeout=timeout, what=f"{service_ids} registered")


def registered_service(agent: ConsulDevAgent, service_id: str) -> dict[str, Any]:
    """One service as the agent holds it, once it is registered."""
    return registered(agent, service_id)[service_id]
