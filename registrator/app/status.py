"""The status endpoints on `--metrics-addr`: /metrics, /healthz and /readyz.

/healthz answers 200 while the process serves requests at all: a liveness check, for restarting
a wedged daemon. /readyz answers 200 only when the first reconcile has completed and Docker and
Consul answer right now (each probed with a short timeout), 503 otherwise with one line per
failing condition: a daemon that cannot see both sides keeps nothing in sync, and an operator
running hundreds of hosts wants to find those hosts by asking. The server runs in a daemon
thread of its own; nothing in the reconcile path waits for it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from registrator.app.check_reports import CheckReports, Reports, body_length
from registrator.app.listen import parse_listen_address
from registrator.app.metrics import Metrics
from registrator.core.errors import BackendError, ConfigError
from registrator.docker.engine import DockerEngine, open_engine
from registrator.registries.open import Opened

#: A readiness condition: returns when it holds, raises BackendError naming why it does not.
Probe = Callable[[], None]
#: seconds a readiness probe waits for Docker or Consul
PROBE_TIMEOUT = 3.0


class Readiness:
    """The conditions /readyz reports; probes run one at a time, whoever asks."""

    def __init__(self, metrics: Metrics, probes: Mapping[str, Probe]) -> None:
        self._metrics = metrics
        self._probes = probes
        self._lock = threading.Lock()

    def failures(self) -> list[str]:
        """One line per condition that does not hold; empty when ready."""
        failing = []
        if not self._metrics.first_reconcile.is_set():
            failing.append("first-reconcile: not completed yet")
        with self._lock:
            for name, probe in self._probes.items():
                try:
                    probe()
                except BackendError as e:
                    failing.append(f"{name}: {e}")
        return failing


class StatusServer:
    """An HTTP server on its own daemon thread; `close()` stops it and frees the port."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        metrics: Metrics,
        readiness: Readiness,
        reports: CheckReports | None = None,
    ):
        handler = _handler(metrics, readiness, reports)
        server_class = _V6Server if ":" in address[0] else ThreadingHTTPServer
        self._server = server_class(address, handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="status-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler(
    metrics: Metrics, readiness: Readiness, reports: CheckReports | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                failing = readiness.failures()
                body = "".join(f"{line}\n" for line in failing) or "ok\n"
                self._send(503 if failing else 200, body.encode())
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n")

        def do_PUT(self) -> None:
            """Catalog mode: an application's report on its TTL check (`check_reports`)."""
            length = body_length(self.headers.get("Content-Length"))
            if length is None:
                self._send(413, b"a report's body is at most 64 KiB\n")
                return
            body = self.rfile.read(length)
            found = reports.answer(self.path, body) if reports else None
            status, text = found or (404, "not found: no TTL checks are reported here\n")
            self._send(status, text.encode())

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes every few seconds would drown the event log; nothing is logged."""

    return Handler


class _DockerProbe:
    """Pings the engine with a client of its own, so probes never share the daemon's."""

    def __init__(self, connect: Callable[[], DockerEngine]) -> None:
        self._connect = connect
        self._engine: DockerEngine | None = None

    def __call__(self) -> None:
        if self._engine is None:
            self._engine = self._connect()  # opening the engine pings: once is enough
            return
        try:
            self._engine.ping()
        except BackendError:
            self._engine.close()
            self._engine = None
            raise


def serve_status(
    address: str, *, metrics: Metrics, registry: Opened, reports: Reports | None = None
) -> StatusServer:
    """Start the status endpoints on `address` (HOST:PORT); ConfigError when it cannot bind.

    The registry's probe is named after it (`consul`, `etcd`, `consulkv`, `skydns2`). In
    catalog mode `reports` takes the applications' reports on their TTL checks."""
    probes: dict[str, Probe] = {
        "docker": _DockerProbe(lambda: open_engine(timeout=PROBE_TIMEOUT)),
        registry.kind: lambda: registry.ping(PROBE_TIMEOUT),
    }
    try:
        server = StatusServer(
            parse_listen_address(address),
            metrics=metrics,
            readiness=Readiness(metrics, probes),
            reports=CheckReports(reports) if reports else None,
        )
    except OSError as e:
        raise ConfigError(f"--metrics-addr {address}: {e.strerror or e}") from e
    return server.start()
