"""The captured Podman answers (tests/fixtures/podman-*) held against a real Podman 4.3, and
what only Podman has: pods, registered one port once, through registrator's CLI.

The unit tests (tests/unit/test_podman.py) read those fixtures; if a Podman answers otherwise,
these tests say so before the adapter silently misreads it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness import TEST_IMAGE, TEST_LABEL, ConsulDevAgent, PodmanService, wait_until
from tests.integration.support import (
    SESSION,
    Containers,
    StartRegistrator,
    run_registrator,
)
from tests.support import FIXTURES, load_fixture

WAIT = 60


@pytest.fixture
def made(podman: PodmanService) -> Iterator[Containers]:
    containers = Containers(podman.api)
    yield containers
    containers.remove_all()


class Watch:
    """A live subscription to the events passing `filters`, read in a thread until closed.

    Live, as registrator subscribes: with `since`/`until` (a read of the past) Podman 4.3's
    event filter matches neither Docker's names nor its own.
    """

    def __init__(self, api: docker.APIClient, **filters: list[str]) -> None:
        self.seen: list[dict[str, Any]] = []
        self._stream = api.events(filters=filters, decode=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # closing the stream ends it with an error
            for event in self._stream:
                self.seen.append(event)

    def actions(self) -> list[str]:
        return [str(e["Action"]) for e in self.seen]

    def wait_for(self, *actions: str) -> list[dict[str, Any]]:
        wait_until(lambda: self.actions()[: len(actions)] == list(actions), timeout=WAIT,
                   what=f"events {actions}, seen {self.actions()}")  # fmt: skip
        return self.seen

    def close(self) -> None:
        self._stream.close()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def watching(api: docker.APIClient, **filters: list[str]) -> Iterator[Watch]:
    watch = Watch(api, **filters)
    try:
        time.sleep(0.5)  # subscribed: the service answers the request before it reads on
        yield watch
    finally:
        watch.close()


def attribute_names(event: dict[str, Any]) -> set[str]:
    """An event's attribute names, less its container's labels (they are the container's)."""
    names = set(event["Actor"]["Attributes"])
    return {n for n in names if not n.startswith("org.") and n.isidentifier()}


def captured(action: str) -> dict[str, Any]:
    for line in (FIXTURES / "podman-events.jsonl").read_text().splitlines():
        event: dict[str, Any] = json.loads(line)
        if event["Action"] == action:
            return event
    raise AssertionError(f"no {action} event captured")


def test_the_engine_says_it_is_podman(podman: PodmanService) -> None:
    version = podman.api.version()
    names = [c["Name"] for c in version["Components"]]

    assert names[0] == load_fixture("podman-version.json")["Components"][0]["Name"]
    assert version["Version"].startswith("4.")


def test_die_and_destroy_filters_match_only_by_podmans_names(
    podman: PodmanService, made: Containers
) -> None:
    with (
        watching(podman.api, event=["start", "die", "destroy"]) as dockers,
        watching(podman.api, event=["start", "died", "remove"]) as podmans,
    ):
        web = made.run()
        podman.api.kill(web)
        podman.api.wait(web, timeout=WAIT)
        podman.api.remove_container(web)
        found = podmans.wait_for("start", "die", "remove")[1:]
        made.run()  # a start after them: once it is seen, so would they have been
        dockers.wait_for("start", "start")

    assert [e["Action"] for e in found] == ["die", "remove"]
    assert attribute_names(found[0]) == attribute_names(captured("die"))
    assert found[0]["Actor"]["Attributes"]["exitCode"] == "137"


def test_network_events_and_kills_are_shaped_as_captured(
    podman: PodmanService, made: Containers
) -> None:
    network = f"rt-pmnet-{uuid.uuid4().hex[:6]}"
    podman.api.create_network(network, labels={TEST_LABEL: SESSION})
    web = made.run()
    try:
        with watching(podman.api, event=["connect", "kill"]) as watch:
            podman.api.connect_container_to_network(web, network)
            podman.api.disconnect_container_from_network(web, network)
            podman.api.kill(web, signal="SIGHUP")
            found = {e["Action"]: e for e in watch.wait_for("connect", "kill")}
    finally:
        podman.api.remove_network(network)

    assert found["connect"]["Type"] == "network"
    assert found["connect"]["Actor"]["ID"] == web  # Docker's actor is the network
    assert "container" not in found["connect"]["Actor"]["Attributes"]
    assert attribute_names(found["kill"]) == attribute_names(captured("kill"))
    assert "signal" not in found["kill"]["Actor"]["Attributes"]


def test_health_status_comes_bare_on_every_probe(podman: PodmanService, made: Containers) -> None:
    web = made.run(healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000})
    with watching(podman.api, event=["health_status"]) as watch:
        podman.healthcheck(web)
        podman.healthcheck(web)
        found = watch.wait_for("health_status", "health_status")

    assert {"HealthStatus"} <= set(found[-1]) & set(captured("health_status"))
    assert made.inspect(web)["State"]["Health"]["Status"] == "healthy"


def test_inspect_is_shaped_as_captured(podman: PodmanService, made: Containers) -> None:
    anywhere = made.run(ports={80: None})
    host = made.run(network_mode="host", command=["sleep", "300"])

    binding = made.inspect(anywhere)["NetworkSettings"]["Ports"]["80/tcp"][0]
    captured_binding = load_fixture("podman-published-any.json")["NetworkSettings"]["Ports"]
    assert binding["HostIp"] == captured_binding["80/tcp"][0]["HostIp"] == ""
    assert made.inspect(host)["NetworkSettings"]["Networks"] == {}


@pytest.fixture
def pod(podman: PodmanService) -> Iterator[str]:
    """A pod publishing 80 and 9000 on loopback: `web` (SERVICE_NAME) and `side`
    (SERVICE_9000_NAME) in it, all labelled with the session."""
    name = f"rt-pod-{uuid.uuid4().hex[:8]}"
    label = f"{TEST_LABEL}={SESSION}"
    podman.podman("pod", "create", "--name", name, "--label", label,
                  "-p", "127.0.0.1::80", "-p", "127.0.0.1::9000")  # fmt: skip
    try:
        members = (("web", "SERVICE_NAME=web", "80"), ("side", "SERVICE_9000_NAME=side", "9000"))
        for member, env, port in members:  # one network: each listens on a port of its own
            podman.podman("run", "-d", "--pod", name, "--name", f"{name}-{member}", "--label",
                          label, "-e", env, TEST_IMAGE, "httpd", "-f", "-p", port)  # fmt: skip
        yield name
    finally:
        podman.podman("pod", "rm", "--force", "--time=0", name)


def test_a_pods_containers_each_report_every_port_and_expose_none(
    podman: PodmanService, pod: str
) -> None:
    web = podman.api.inspect_container(f"{pod}-web")
    captured_web = load_fixture("podman-pod-web.json")

    assert sorted(web["NetworkSettings"]["Ports"]) == ["80/tcp", "9000/tcp"]
    assert web["Config"].get("ExposedPorts") is captured_web["Config"].get("ExposedPorts") is None
    assert web["HostConfig"]["NetworkMode"].startswith("container:")


def _pod_services(consul: ConsulDevAgent, identity: str) -> dict[str, tuple[str, str, int]]:
    services = consul.services(owner=identity)
    return {k: (s["Service"], s["Address"], s["Port"]) for k, s in services.items()}


def test_a_pod_registers_each_port_once_for_the_container_that_claims_it(
    podman: PodmanService,
    pod: str,
    consul: ConsulDevAgent,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    start_registrator(consul.uri, "--hostname", identity, env={"DOCKER_HOST": podman.host})
    ports = podman.api.inspect_container(f"{pod}-web")["NetworkSettings"]["Ports"]
    web, side = (int(ports[p][0]["HostPort"]) for p in ("80/tcp", "9000/tcp"))

    expected = {
        f"{identity}:{pod}-web:80": ("web", "127.0.0.1", web),
        f"{identity}:{pod}-side:9000": ("side", "127.0.0.1", side),
    }
    wait_until(lambda: _pod_services(consul, identity) == expected, timeout=WAIT, what="pod")

    podman.podman("stop", "--time=0", f"{pod}-side")
    wait_until(
        lambda: list(_pod_services(consul, identity)) == [f"{identity}:{pod}-web:80"],
        timeout=WAIT,
        what="side deregistered, web kept",
    )


def test_resync_internal_and_explain_against_podman(
    podman: PodmanService, pod: str, consul: ConsulDevAgent, identity: str
) -> None:
    env = {"DOCKER_HOST": podman.host}
    infra = podman.podman("pod", "inspect", pod, "--format", "{{.InfraContainerID}}")
    address = podman.api.inspect_container(infra)["NetworkSettings"]["IPAddress"]

    first = run_registrator("--resync", "--internal", "--hostname", identity, consul.uri, env=env)
    second = run_registrator("--resync", "--internal", "--hostname", identity, consul.uri, env=env)
    explained = run_registrator(
        "explain", "--hostname", identity, consul.uri, f"{pod}-side", env=env, isolated=False
    )

    assert first.returncode == 0, first.stderr
    assert "registered 2," in first.stdout
    assert "registered 0, updated 0, deregistered 0, unchanged 2" in second.stdout
    assert _pod_services(consul, identity) == {
        f"{identity}:{pod}-web:80": ("web", address, 80),
        f"{identity}:{pod}-side:9000": ("side", address, 9000),
    }
    assert explained.returncode == 0, explained.stderr
    services = explained.stdout.split("services (1):\n")[1].splitlines()
    assert services[:2] == [f"  {identity}:{pod}-side:9000", "    name     side"]
    assert "on its stop signal: not drained: drain before stop does not start" in explained.stdout


def test_a_pod_that_asks_registers_its_infra_and_an_image_expose_counts(
    podman: PodmanService, consul: ConsulDevAgent, identity: str, tmp_path: Path
) -> None:
    """The pod's labels carry SERVICE_NAME: port 80 is the pod's own; the app's image
    EXPOSEs 8080 (Podman drops it from the container; registrator reads the image)."""
    image = f"localhost/rt-exposes-8080:{SESSION}"
    (tmp_path / "Containerfile").write_text(f"FROM localhost/{TEST_IMAGE}\nEXPOSE 8080\n")
    podman.podman("build", "-q", "-t", image, str(tmp_path))
    name = f"rt-pod-{uuid.uuid4().hex[:8]}"
    label = f"{TEST_LABEL}={SESSION}"
    podman.podman("pod", "create", "--name", name, "--label", label,
                  "--label", "SERVICE_NAME=shop", "-p", "127.0.0.1::80")  # fmt: skip
    env = {"DOCKER_HOST": podman.host}
    try:
        podman.podman("run", "-d", "--pod", name, "--name", f"{name}-app", "--label", label,
                      image, "httpd", "-f", "-p", "8080")  # fmt: skip
        infra = podman.podman("pod", "inspect", name, "--format", "{{.InfraContainerID}}")
        found = podman.api.inspect_container(infra)
        port = int(found["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])

        published = run_registrator("--resync", "--hostname", identity, consul.uri, env=env)
        assert published.returncode == 0, published.stderr
        infra_name = found["Name"].lstrip("/")
        assert _pod_services(consul, identity) == {
            f"{identity}:{infra_name}:80": ("shop", "127.0.0.1", port)
        }

        internal = run_registrator(
            "--resync", "--internal", "--hostname", identity, consul.uri, env=env
        )
        assert internal.returncode == 0, internal.stderr
        address = found["NetworkSettings"]["IPAddress"]
        assert _pod_services(consul, identity) == {
            f"{identity}:{infra_name}:80": ("shop", address, 80),
            f"{identity}:{name}-app:8080": ("rt-exposes-8080", address, 8080),
        }
    finally:
        podman.podman("pod", "rm", "--force", "--time=0", name)
        podman.podman("rmi", "--force", image)
