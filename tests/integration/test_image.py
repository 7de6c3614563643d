"""The image: built here from a Debian base with the real daemon, run with the socket mounted."""

from __future__ import annotations

import hashlib
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import docker
import pytest
import requests.exceptions

from harness import ROOT, ConsulDevAgent, start_on_free_ports, wait_until
from harness.ports import exited
from registrator import __version__
from tests.integration.support import ISOLATION, Containers

BASE_IMAGE = os.environ.get("REGISTRATOR_PYTHON_BASE", "registrator-test/python-base:bookworm")
#: one tag per checkout, so test runs of two checkouts on one daemon never share an image
CHECKOUT = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
IMAGE = f"registrator-test/registrator:{CHECKOUT}"
CHECKOUT_LABEL = "org.registrator.test.checkout"
SOCKET = "/var/run/docker.sock"
ENTRYPOINT_UID = 10001


@pytest.fixture(scope="module")
def image(docker_api: docker.APIClient) -> str:
    """The Dockerfile built with the local base image and the host's wheels, no index used."""
    docker_api.inspect_image(BASE_IMAGE)  # built by scripts/stack.sh base
    build = docker_build()
    if build.returncode != 0 and "error during connect" in build.stderr:
        # another test run restarted the shared Docker daemon mid-build: once more when it is back
        wait_until(lambda: _pings(docker_api), timeout=60, what="the Docker daemon back")
        build = docker_build()
    assert build.returncode == 0, build.stderr + build.stdout
    # the image this checkout built before is now untagged: remove it, and only it
    subprocess.run(
        ["docker", "image", "prune", "--force", "--filter", f"label={CHECKOUT_LABEL}={CHECKOUT}"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return IMAGE


def docker_build() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "docker", "build", "--quiet", "--force-rm", "--tag", IMAGE,
            "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
            "--build-arg", "PIP_NO_INDEX=1",
            "--label", "org.registrator.test=image",
            "--label", f"{CHECKOUT_LABEL}={CHECKOUT}",
            str(ROOT),
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _pings(api: docker.APIClient) -> bool:
    try:
        return bool(api.ping())
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False


def status_of(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code
    except (urllib.error.URLError, ConnectionError):
        return 0


def test_the_image_registers_a_container_as_an_unprivileged_user_and_reports_healthy(
    image: str, consul: ConsulDevAgent, containers: Containers, identity: str
) -> None:
    def start(ports: list[int]) -> tuple[str, int]:
        """The image on the host's network, its status server on `ports[0]`, until it listens
        (`AddressInUse` when that port was taken meanwhile: started again on another)."""
        registrator = containers.run(
            ["--hostname", identity, *ISOLATION, consul.uri],
            image=image,
            env={"REGISTRATOR_METRICS_ADDR": f"127.0.0.1:{ports[0]}"},
            healthcheck={"interval": 500_000_000, "start_period": 30_000_000_000},
            network_mode="host",
            binds={SOCKET: {"bind": SOCKET, "mode": "ro"}},
        )

        def listening() -> bool:
            logs = containers.logs(registrator)
            if containers.inspect(registrator)["State"]["Status"] == "exited":
                raise exited("registrator's image", logs)
            return "status.listening" in logs

        wait_until(listening, timeout=30, what="the image's status server")
        return registrator, ports[0]

    registrator, metrics_port = start_on_free_ports(1, start, what="registrator's image")
    web = containers.run(env={"SERVICE_NAME": "from-image"}, ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"

    service = wait_until(lambda: consul.services().get(service_id), timeout=30, what=service_id)

    assert service["Service"] == "from-image"
    assert service["Port"] == containers.host_port(web)
    wait_until(lambda: http_status(metrics_port, "/readyz") == 200, what="/readyz 200")
    health = wait_until(
        lambda: (
            containers.inspect(registrator)["State"].get("Health", {}).get("Status") == "healthy"
            and containers.inspect(registrator)["State"]["Health"]
        ),
        timeout=30,
        what="the image's HEALTHCHECK to pass",
    )
    assert "healthcheck: /healthz 200 ok" in health["Log"][-1]["Output"]
    state = containers.inspect(registrator)["State"]
    process = status_of(state["Pid"])
    assert process["Uid"].split()[0] == str(ENTRYPOINT_UID)
    assert str(os.stat(SOCKET).st_gid) in process["Groups"].split()
    assert process["CapEff"] == "0000000000000000"
    mounts = {m["Destination"]: m for m in containers.inspect(registrator)["Mounts"]}
    assert mounts[SOCKET]["RW"] is False


def test_the_entrypoint_takes_the_gliderlabs_socket_path_and_stays_root_only_when_it_must(
    image: str, containers: Containers
) -> None:
    # a socket only root may use, where gliderlabs' users mount theirs
    script = (
        "python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"/tmp/docker.sock\")'"
        " && chmod 600 /tmp/docker.sock && exec registrator-entrypoint --version"
    )
    container = containers.run(["-c", script], image=image, create={"entrypoint": ["sh"]})

    exit_code = containers.api.wait(container, timeout=60)["StatusCode"]
    logs = containers.api.logs(container).decode()

    assert exit_code == 0, logs
    assert "/tmp/docker.sock is not group read-write (mode 600): running as root" in logs
    assert f"registrator {__version__}" in logs
