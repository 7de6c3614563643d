"""A Podman API service of the caller's own: `podman system service` on a socket in a workdir.

Everything of it lives in that workdir: its containers.conf (through CONTAINERS_CONF), its
storage (through CONTAINERS_STORAGE_CONF), its network configuration, its tmpdir and socket.
The machine's Podman settings and storage are never read or changed.

Why this containers.conf: these machines lack CAP_SYS_RESOURCE, so the default rlimits make
runc fail (`error setting rlimit type 7: operation not permitted`); Debian's crun fails on
cgroups in hybrid mode; there is no systemd (cgroupfs, and events in a file, not journald).

Its default network is a bridge of its own (`rt-pm-…`) on a /24 no route of the host uses, so
two services started at once (two test runs, a benchmark) never hand out the same address.
Publishing a port is netavark's work: iptables rules for that bridge, gone with its last
container. Containers get the image `docker save`d from the machine's Docker (`load_image`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import docker
import requests.exceptions

from harness.dockerd import mounts_under, unused_subnet
from harness.processes import stop_process
from harness.waits import wait_until

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_config_dir = "{networks}"
default_network = "{network}"
"""
#: what docker-py raises when the service does not answer
UNANSWERED = (docker.errors.DockerException, requests.exceptions.RequestException)


class PodmanService:
    """`start()`, `api` (docker-py against the compat API), `podman(...)` (its CLI), `remove()`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.network = f"rt-pm-{workdir.name[-8:]}"  # also its bridge: 15 characters at most
        self.subnet = unused_subnet()
        self.process: subprocess.Popen[bytes] | None = None
        self._api: docker.APIClient | None = None

    @classmethod
    def new(cls) -> PodmanService:
        return cls(Path(tempfile.mkdtemp(prefix="rt-podman-", dir="/tmp")))

    @property
    def host(self) -> str:
        """Its `DOCKER_HOST`."""
        return f"unix://{self.workdir / 'podman.sock'}"

    @property
    def env(self) -> dict[str, str]:
        """What every podman process of this service's needs: its conf and its storage."""
        return {
            "CONTAINERS_CONF": str(self.workdir / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.workdir / "storage.conf"),
        }

    @property
    def log_path(self) -> Path:
        return self.workdir / "service.log"

    @property
    def api(self) -> docker.APIClient:
        if self._api is None:
            self._api = docker.APIClient(base_url=self.host, version="auto", timeout=60)
        return self._api

    def start(self) -> PodmanService:
        self._write_configuration()
        args = ["podman", *self._global_options(), "system", "service", "--time=0", self.host]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        wait_until(self._ready, timeout=60, interval=0.2, what=f"podman service on {self.host}")
        return self

    def _global_options(self) -> list[str]:
        return ["--tmpdir", str(self.workdir / "tmp")]

    def _write_configuration(self) -> None:
        networks = self.workdir / "networks"
        networks.mkdir(parents=True, exist_ok=True)
        conf = CONTAINERS_CONF.format(networks=networks, network=self.network)
        (self.workdir / "containers.conf").write_text(conf)
        (self.workdir / "storage.conf").write_text(
            '[storage]\ndriver = "overlay"\n'
            f'graphroot = "{self.workdir / "root"}"\nrunroot = "{self.workdir / "run"}"\n'
        )
        (networks / f"{self.network}.json").write_text(json.dumps(self._network_definition()))

    def _network_definition(self) -> dict[str, Any]:
        """netavark's definition of a bridge network, as `podman network create` writes it."""
        gateway = next(self.subnet.hosts())
        return {
            "name": self.network,
            "id": os.urandom(32).hex(),
            "driver": "bridge",
            "network_interface": self.network,
            "created": "2026-01-01T00:00:00Z",
            "subnets": [{"subnet": str(self.subnet), "gateway": str(gateway)}],
            "ipv6_enabled": False,
            "internal": False,
            "dns_enabled": False,
            "ipam_options": {"driver": "host-local"},
        }

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            self.process = None
            raise RuntimeError(f"podman service exited: {self.log_path.read_text()[-2000:]}")
        try:
            return bool(self.api.ping())
        except UNANSWERED:
            return False

    def podman(self, *args: str, timeout: float = 60) -> str:
        """Run its CLI (same conf, same storage) and return what it printed; fails loudly."""
        done = subprocess.run(
            ["podman", *self._global_options(), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def load_image(self, image: str, *, source: docker.APIClient) -> None:
        """Copy `image` from the Docker daemon `source` into this storage (`docker save | podman
        load`). Podman files it as `localhost/<image>`, and finds it by either name."""
        self.api.load_image(b"".join(source.get_image(image)))

    def healthcheck(self, container: str) -> None:
        """Run the container's HEALTHCHECK once, as the systemd timer Podman relies on would."""
        with contextlib.suppress(RuntimeError):  # an unhealthy probe exits 1: that is a result
            self.podman("healthcheck", "run", container)

    def stop(self) -> None:
        if self._api is not None:
            self._api.close()
        if self.process is not None:
            stop_process(self.process, timeout=30)
        self.process = None

    def remove(self) -> None:
        """Its containers, pods and the service; then its storage, mounts and workdir."""
        if self.process is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.podman("pod", "rm", "--all", "--force", "--time=0", timeout=120)
                self.podman("rm", "--all", "--force", "--time=0", timeout=120)
        self.stop()
        for mount in reversed(mounts_under(self.workdir)):
            subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)
        if Path(f"/sys/class/net/{self.network}").exists():
            subprocess.run(["ip", "link", "delete", self.network], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
