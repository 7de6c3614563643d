"""Debian's nginx-light as a fleet's load balancer: a process of the fleet's own, with its own
configuration, pid file, logs and temporary directories (never the machine's nginx service)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from harness import wait_until
from harness.cluster import http_get, stop_with
from harness.ports import exited, start_on_free_ports


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        raise RuntimeError("no nginx binary: run scripts/stack.sh nginx (the test command does)")
    return found


NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    upstream consul_servers {{
{servers}
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://consul_servers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Prometheus and consul-template hold blocking queries for minutes
            proxy_read_timeout 330s;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    """Debian's nginx-light as a load balancer of the fleet's own: own config, pid and logs."""

    workdir: Path
    address: str
    upstreams: list[str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self) -> Nginx:
        return start_on_free_ports(1, self._start_on, what="nginx")

    def _start_on(self, ports: list[int]) -> Nginx:
        [self.port] = ports
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server {upstream};" for upstream in self.upstreams)
        conf = self.workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.workdir, servers=servers, listen=self.http))
        args = [nginx_binary(), "-p", str(self.workdir), "-c", str(conf)]
        args += ["-e", str(self.workdir / "error.log")]
        (self.workdir / "error.log").write_text("")
        with (self.workdir / "nginx.out").open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=15, what=f"nginx on {self.http}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            self.process = None
            raise exited("nginx", (self.workdir / "error.log").read_text())
        try:
            return bool(http_get(self.http, "/v1/status/leader", timeout=2))
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def stop(self) -> None:
        # nginx's fast shutdown: a graceful one (SIGQUIT) waits for every open connection,
        # a blocking query a test's proxy left behind included (10 s, then SIGKILL)
        stop_with(self.process, signal.SIGTERM)
        self.process = None
