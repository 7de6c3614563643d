"""A dockerd of the caller's own, to restart or break without touching the machine's daemon.

It has its own socket, data root, exec root (so its own containerd), pid file, configuration
file and containerd namespaces. It writes no iptables rule, turns on no IP forwarding and
masquerades nothing. Its default network sits on a Linux bridge of its own, on a /24 that no
route of the host uses, and docker-proxy serves the ports its containers publish. That bridge
and its route are its only mark on the host, and `remove()` takes them away.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
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
#: what docker-py raises when the daemon does not answer
UNANSWERED = (docker.errors.DockerException, requests.exceptions.RequestException)
#: the /24s a private dockerd picks its subnet from: no Docker default pool, no common LAN
SUBNETS = ipaddress.IPv4Network("10.213.0.0/16")
NETWORK_OPTIONS = (
    "--iptables=false",
    "--ip6tables=false",
    "--ip-masq=false",
    "--ip-forward=false",
)


class PrivateDockerd:
    """`start()`, `network()`, `restart()` (SIGTERM, start again, as a reboot does), `remove()`.

    `workdir` holds everything of it and is deleted by `remove()`; keep it short (`new()` makes
    one under /tmp), since the sockets of dockerd and its containerd live there.
    """

    def __init__(self, workdir: Path) -> None:
        if len(str(workdir / "exec" / "containerd" / "containerd.sock")) > SOCKET_PATH_MAX:
            raise ValueError(f"{workdir} is too long a path for dockerd's sockets")
        self.workdir = workdir
        self.storage_driver: str | None = None  # the daemon's default until a start says otherwise
        self.subnet = unused_subnet()
        self.bridge = f"rt-br-{workdir.name[-8:]}"  # an interface name: 15 characters at most
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
            f"--bridge={self._own_bridge()}",
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
        except UNANSWERED:
            return False

    def _own_bridge(self) -> str:
        """The Linux bridge its default network uses, made here on the subnet picked for it.

        Never `--bridge=none`: a dockerd without a bridge deletes the host's `docker0`, which
        belongs to the machine's daemon. Nor the default: that is `docker0` itself. Nor
        `--default-address-pool`: with one, a dockerd that finds its old default network at
        start-up (a restart) deletes `docker0` too.
        """
        if not Path(f"/sys/class/net/{self.bridge}").exists():
            gateway = f"{next(self.subnet.hosts())}/{self.subnet.prefixlen}"
            for command in (
                ["ip", "link", "add", self.bridge, "type", "bridge"],
                ["ip", "addr", "add", gateway, "dev", self.bridge],
                ["ip", "link", "set", self.bridge, "up"],
            ):
                subprocess.run(command, capture_output=True, check=True)
        return self.bridge

    def network(self) -> str:
        """The name of its bridge network, on its own Linux bridge: give it as `network_mode`."""
        return "bridge"

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
        """Its containers and network, the daemon, then all it left on the host and in `workdir`."""
        if self.process is not None:
            with contextlib.suppress(*UNANSWERED):
                for row in self.api.containers(all=True):
                    self.api.remove_container(row["Id"], force=True)
        self.stop()
        if Path(f"/sys/class/net/{self.bridge}").exists():  # made by _own_bridge
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
        for mount in reversed(mounts_under(self.workdir)):  # deepest last mounted, first off
            subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, in the order they were mounted."""
    prefix = str(directory.resolve())
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def unused_subnet() -> ipaddress.IPv4Network:
    """A /24 of SUBNETS that overlaps no route of the host (other daemons' bridges included)."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    used = [net for line in routes.splitlines() if (net := _destination(line)) is not None]
    candidates = list(SUBNETS.subnets(new_prefix=24))
    random.shuffle(candidates)  # two private dockerds started at once rarely pick the same one
    for subnet in candidates:
        if not any(subnet.overlaps(route) for route in used):
            return subnet
    raise RuntimeError(f"every /24 of {SUBNETS} is routed on this host")


def _destination(route: str) -> ipaddress.IPv4Network | None:
    """The destination of a line of `ip route` (after its type, if any); None for the default."""
    for word in route.split()[:2]:
        with contextlib.suppress(ValueError):
            return ipaddress.IPv4Network(word, strict=False)
    return None
