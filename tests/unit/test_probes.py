"""The probe runner: real probes on loopback, its pool and scheduler, the container told of a
changed status (once per change), and the probes following what plans desire."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from harness.ports import refusing_port
from harness.waits import wait_until
from registrator.core.health import probes
from registrator.core.model import OWNER_META_KEY, Check, ContainerID, Service, ServiceID
from registrator.runtime.probes import ProbeRunner, run_probe

SID = ServiceID("h:web:80")


def web(check: Check) -> Service:
    meta = ((OWNER_META_KEY, "h"),)
    return Service(SID, "web", "127.0.0.1", 80, meta=meta, checks=(check,), container="c1")


def tcp(target: str) -> Check:
    definition = (("Interval", "100ms"), ("TCP", target), ("Timeout", "1s"))
    return Check(f"service:{SID}:tcp", "web TCP", "tcp", definition, "n")


class _Answers(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/ok" else 429 if self.path == "/busy" else 500
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"hi")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("path", "result"), [("/ok", "passing"), ("/busy", "warning"), ("/x", "critical")]
)
def test_an_http_probe_reads_the_status_code_as_consul_does(
    server: str, path: str, result: str
) -> None:
    definition = (("HTTP", f"http://{server}{path}"), ("Interval", "1s"))
    [probe] = probes({SID: web(Check("c", "n", "http", definition))}).values()

    found, output = run_probe(probe)

    assert found == result
    assert output.startswith(f"HTTP GET http://{server}{path}: ")


def test_a_changed_status_tells_its_container_once_and_the_plan_then_carries_it() -> None:
    told: list[ContainerID] = []
    stop = threading.Event()
    runner = ProbeRunner(workers=2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        accepted = _accepting(listener)
        target = f"127.0.0.1:{listener.getsockname()[1]}"
        desired = {SID: web(tcp(target))}
        [start] = runner.statuses(desired, {}, None)[SID].checks
        threading.Thread(target=runner.run, args=(stop, told.append), daemon=True).start()
        try:
            wait_until(lambda: len(accepted) >= 5, what="five probes")  # every 100 ms
        finally:
            stop.set()
    [now] = runner.statuses(desired, {}, None)[SID].checks

    assert (start.status, now.status) == ("critical", "passing")
    assert told == ["c1"]  # one change, however many probes
    assert now.output.startswith(f"TCP connect {target}")


def _accepting(listener: socket.socket) -> list[int]:
    """Accepts (and closes) connections in the background; one entry per connection."""
    accepted: list[int] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.close()
            accepted.append(1)

    threading.Thread(target=accept, daemon=True).start()
    return accepted


def test_probes_follow_the_plans_scope() -> None:
    runner = ProbeRunner()
    with refusing_port() as port:
        desired = {SID: web(tcp(f"127.0.0.1:{port}"))}
        runner.statuses(desired, {}, None)
        assert list(runner.results()) == [f"service:{SID}:tcp"]

        runner.statuses({}, {}, [ServiceID("other")])  # another service's scope
        assert list(runner.results()) == [f"service:{SID}:tcp"]
        runner.statuses({}, {}, [SID])  # its own scope, no longer desired
        assert runner.results() == {}
