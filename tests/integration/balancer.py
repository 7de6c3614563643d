"""A real HAProxy that finds its servers in Consul DNS, and a client that counts failed requests.

HAProxy resolves `_<service>._tcp.service.consul` SRV records at the test agent's DNS port
(Consul 1.8 answers with the address in the additional section, which HAProxy 2.2+ reads), and
follows the answers within about a second: a server that leaves Consul's passing answers leaves
the pool. The backends share one address (the host's, with a port each), so `allow-dup-ip`:
by default HAProxy keeps a second server with an address already in use out of the pool. It
has no health checks of its own, and no `option redispatch`: a request sent to a server that
has gone fails, as it does for a client that trusts Consul alone. Failed requests are logged
(with the server they went to) in haproxy.log.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness import stop_process, wait_until
from harness.ports import exited, start_on_free_ports

CONFIG = """\
global
    maxconn 512
    nbthread 1
    stats socket {socket} mode 600 level admin
    log stdout format raw local0

resolvers consul
    nameserver consul 127.0.0.1:{dns_port}
    accepted_payload_size 8192
    resolve_retries 3
    timeout resolve 1s
    timeout retry 500ms
    hold valid 1s
    hold other 1s
    hold refused 1s
    hold nx 1s
    hold timeout 1s
    hold obsolete 0s

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    option http-server-close
    retries 2
    timeout connect 500ms
    timeout client 10s
    timeout server 10s

frontend app
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
    server-template app 8 _{service}._tcp.service.consul resolvers consul \
resolve-prefer ipv4 resolve-opts allow-dup-ip init-addr none
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    raise RuntimeError("no haproxy binary: run scripts/stack.sh haproxy (the test command does)")


@dataclass
class HAProxy:
    """`haproxy -db` on a free loopback port, balancing over the Consul service `service`."""

    workdir: Path
    dns_port: int
    service: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.workdir / "admin.sock"

    def start(self) -> HAProxy:
        return start_on_free_ports(1, self._start_on, what="haproxy")

    def _start_on(self, ports: list[int]) -> HAProxy:
        [self.port] = ports
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "haproxy.cfg"
        config.write_text(
            CONFIG.format(
                socket=self.socket_path,
                dns_port=self.dns_port,
                port=self.port,
                service=self.service,
            )
        )
        with (self.workdir / "haproxy.log").open("ab") as log:
            self.process = subprocess.Popen(
                [haproxy_binary(), "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._ready, timeout=15, what="haproxy's stats socket")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            self.process = None
            raise exited("haproxy", self.log_tail())
        try:
            self.servers()
        except OSError:
            return False
        return True

    def servers(self) -> set[tuple[str, int]]:
        """(address, port) of the servers HAProxy sends traffic to now."""
        servers = set()
        for line in self._command("show servers state app").splitlines()[2:]:
            fields = line.split()
            # be_id be_name srv_id srv_name srv_addr srv_op_state ... srv_port (19th)
            if len(fields) > 18 and fields[4] != "-" and fields[5] == "2":
                servers.add((fields[4], int(fields[18])))
        return servers

    def _command(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.socket_path))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def failed_requests(self) -> list[str]:
        """HAProxy's log line for each request that failed (`option dontlog-normal`)."""
        text = (self.workdir / "haproxy.log").read_text()
        return [line for line in text.splitlines() if " app app/" in line]

    def log_tail(self) -> str:
        return (self.workdir / "haproxy.log").read_text()[-3000:]

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None


@dataclass
class Client:
    """Workers sending GET / through the balancer until stopped, bounded in count and time."""

    port: int
    workers: int = 3
    max_requests: int = 60_000
    max_seconds: float = 100
    #: what a good answer carries (the busybox image's /www/index.html)
    body: bytes = b"ok\n"
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Client:
        deadline = time.monotonic() + self.max_seconds
        for n in range(self.workers):
            thread = threading.Thread(target=self._run, args=(deadline,), name=f"client-{n}")
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def failed(self) -> int:
        with self._lock:
            return sum(self.failures.values())

    @property
    def sent(self) -> int:
        with self._lock:
            return self.ok + sum(self.failures.values())

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            failure = self._request()
            with self._lock:
                if failure:
                    self.failures[failure] += 1
                else:
                    self.ok += 1
                if self.ok + sum(self.failures.values()) >= self.max_requests:
                    return
            self._stop.wait(0.005)  # pacing, so the load stays modest on a shared machine

    def _request(self) -> str:
        """ "" for a good answer, else what went wrong."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as e:
            return type(e).__name__
        finally:
            connection.close()
        if response.status != 200 or body != self.body:
            return f"HTTP {response.status}"
        return ""
