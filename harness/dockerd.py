"""A dockerd of the caller's own, to restart or break without touching the machine's daemon.

It has its own socket, data root, exec root (so its own containerd), pid file, configuration
file and containerd namespaces. It creates no bridge, writes no iptables rule and changes no
sysctl, so nothing it does reaches the host's network: its containers use the host's network
(`network_mode="host"`), where registrator registers a container's exposed ports.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
import requests.exceptions

from harness.processes import stop_process
from harness.waits import wait_until

#: the kernel's limit on a unix socket's path, less the room containerd needs under exec-root
SOCKET_PATH_MAX = 80
#: what dockerd uses when overlay2 cannot work where the data root is (overlay on overlay)
FALLBACK_STORAGE = "vfs"
NETWORK_OPTIONS = (
    "--bridge=none",
    "--iptables=false",
    "--ip6tables=false",
    "--ip-masq=false",
    "--ip-forward=false",
)


class PrivateDockerd:
    """`start()`, `restart()` (SIGTERM and start again, as a host's restart does), `remove()`.

    `workdir` holds everything of it and is deleted by `remove()`; keep it short (`new()` makes
    one under /tmp), since the sockets of dockerd and its containerd live there.
    """

    def __init__(self, workdir: Path) -> None:
        if len(str(workdir / "exec" / "containerd" / "containerd.sock")) > SOCKET_PATH_MAX:
            raise ValueError(f"{workdir} is too long a path for dockerd's sockets")
        self.workdir = workdir
        self.storage_driver: str | None = None  # the daemon's default until a start says otherwise
        self.process: subprocess.Popen[bytes] | None = None
        self._api: docker.APIClient | None = None

    @classmethod
    def new(cls) -> PrivateDockerd:
        return cls(Path(tempfile.mkdtemp(prefix="rt-dockerd-", dir="/tmp")))

    @property
    def host(self) -> str:
        """Its `DOCKER_HOST`."""
        return f"unix://{self.workdir / 'docker.sock'}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dockerd.log"

    @property
    def api(self) -> docker.APIClient:
        if self._api is None:
            self._api = docker.APIClient(base_url=self.host, version="auto", timeout=60)
        return self._api

    def start(self) -> PrivateDockerd:
        """Start it; fall back to the vfs storage driver when the default one cannot run here."""
        if self.storage_driver is not None:
            self._start_with(self.storage_driver)
            return self
        try:
            self._start_with(None)
        except RuntimeError:
            self._start_with(FALLBACK_STORAGE)
            self.storage_driver = FALLBACK_STORAGE
        return self

    def _start_with(self, storage_driver: str | None) -> None:
        (self.workdir / "daemon.json").write_text("{}\n")  # never the machine's /etc/docker one
        args = [
            "dockerd",
            f"--host={self.host}",
            f"--data-root={self.workdir / 'data'}",
            f"--exec-root={self.workdir / 'exec'}",
            f"--pidfile={self.workdir / 'dockerd.pid'}",
            f"--config-file={self.workdir / 'daemon.json'}",
            "--containerd-namespace=registrator-test",
            "--containerd-plugins-namespace=registrator-test-plugins",
            *NETWORK_OPTIONS,
        ]
        if storage_driver is not None:
            args.append(f"--storage-driver={storage_driver}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=60, interval=0.2, what=f"private dockerd on {self.host}")

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            self.process = None
            raise RuntimeError(f"private dockerd exited: {self.log_path.read_text()[-2000:]}")
        try:
            return bool(self.api.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False

    def restart(self) -> None:
        """Stop it as a host's shutdown does (SIGTERM: containers stop), then start it again."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self._api is not None:
            self._api.close()  # its pooled connections die with the daemon; it reopens lazily
        if self.process is not None:
            stop_process(self.process, timeout=60)
        self.process = None

    def load_image(self, image: str, *, source: docker.APIClient) -> None:
        """Copy `image` from the daemon `source` into this one (`docker save | docker load`)."""
        self.api.load_image(b"".join(source.get_image(image)))

    def remove(self) -> None:
        """Its containers, the daemon, then every mount and file it left under `workdir`."""
        if self.process is not None:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                for row in self.api.containers(all=True):
                    self.api.remove_container(row["Id"], force=True)
        self.stop()
        for mount in reversed(_mounts_under(self.workdir)):  # deepest last mounted, first off
            subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, in the order they were mounted."""
    prefix = str(directory.resolve())
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]
