"""The adapters' HTTP client: kept-alive connections per thread, stale ones replaced once; and
the Consul adapter's requests through it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from harness import refusing_port, wait_until
from registrator.core.errors import RegistryUnavailable
from registrator.core.model import Check, ServiceID
from registrator.registries.consul.agent import ConsulAgent
from registrator.registries.consul.target import ConsulTarget
from registrator.wire import TRANSPORT_ERRORS, Connections, Endpoint, path_segment


class _Echo(BaseHTTPRequestHandler):
    """Answers with what it got; after `close_after` requests on a connection, closes it
    without saying so (as an agent does with an idle kept-alive connection)."""

    protocol_version = "HTTP/1.1"
    close_after: ClassVar[int] = 0
    connections: ClassVar[list[int]] = []
    seen: ClassVar[list[dict[str, Any]]] = []

    def setup(self) -> None:
        super().setup()
        self.served = 0
        type(self).connections.append(id(self))

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = {
            "method": self.command,
            "path": self.path,
            "body": body.decode(),
            "token": self.headers.get("X-Consul-Token"),
            "type": self.headers.get("Content-Type"),
        }
        type(self).seen.append(answer)
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.served += 1
        if self.close_after and self.served >= self.close_after:
            self.close_connection = True

    do_PUT = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Echo.close_after, _Echo.connections, _Echo.seen = 0, [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host, port = httpd.server_address[:2]
    yield f"http://{host!s}:{port}"
    httpd.shutdown()
    httpd.server_close()


def connections(server: str) -> Connections:
    return Connections(Endpoint(server), timeout=5)


def test_the_consul_adapter_sends_the_token_the_query_and_a_json_body(server: str) -> None:
    agent = ConsulAgent(ConsulTarget(server, token="secret"))

    agent.update_ttl(Check("service:a b", "n", "ttl", status="passing", output="ok"))
    agent.set_maintenance(ServiceID('a "b"'), enabled=True, reason="paused by x")
    agent.close()

    assert [(e["method"], e["path"], e["body"], e["token"], e["type"]) for e in _Echo.seen] == [
        (
            "PUT",
            "/v1/agent/check/update/service:a%20b",
            '{"Status": "passing", "Output": "ok"}',
            "secret",
            "application/json",
        ),
        (
            "PUT",
            "/v1/agent/service/maintenance/a%20%22b%22?enable=true&reason=paused%20by%20x",
            "",
            "secret",
            None,
        ),
    ]


def test_one_thread_keeps_its_connection_alive(server: str) -> None:
    http = connections(server)

    for _ in range(3):
        assert http.request("GET", "/v1/status/leader").ok

    assert len(_Echo.connections) == 1
    http.close()


def test_threads_do_not_share_a_connection(server: str) -> None:
    http = connections(server)
    http.request("GET", "/a")

    other = threading.Thread(target=lambda: http.request("GET", "/b"))
    other.start()
    other.join()

    assert len(_Echo.connections) == 2
    http.close()


def test_a_connection_the_agent_closed_is_replaced_once(server: str) -> None:
    _Echo.close_after = 1
    http = connections(server)

    answers = [http.request("GET", f"/{n}").json()["path"] for n in range(3)]

    assert answers == ["/0", "/1", "/2"]
    assert len(_Echo.connections) == 3
    http.close()


def test_an_agent_that_does_not_answer_is_unavailable() -> None:
    with refusing_port() as port:
        agent = ConsulAgent(ConsulTarget(f"http://127.0.0.1:{port}"), timeout=1)

        with pytest.raises(RegistryUnavailable, match=f"GET http://127.0.0.1:{port}/v1/agent/"):
            agent.advertise_address()


@pytest.mark.parametrize(
    ("value", "segment"),
    [("h:web:80", "h:web:80"), ('quote"d', "quote%22d"), ("a b/c%20", "a%20b%2Fc%2520")],
)
def test_an_id_is_one_path_segment_whatever_it_holds(value: str, segment: str) -> None:
    assert path_segment(value) == segment


class _Events(BaseHTTPRequestHandler):
    """A never-ending chunked answer: two lines, then nothing until the client goes."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in (b'{"n": 1}\n', b'{"n": 2}\n'):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.flush()
        self.rfile.read(1)  # blocks until the client closes

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_stream_yields_lines_as_they_come_and_close_from_another_thread_ends_it() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Events)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host, port = httpd.server_address[:2]
    stream = connections(f"http://{host!s}:{port}").stream("/events")
    got: list[bytes] = []
    ended: list[BaseException | None] = []

    def read() -> None:
        try:
            for line in stream.lines():
                got.append(line)
            ended.append(None)
        except (ValueError, *TRANSPORT_ERRORS) as e:
            ended.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: len(got) == 2, what="both lines")
    stream.close()
    reader.join(timeout=5)

    assert got == [b'{"n": 1}\n', b'{"n": 2}\n']
    assert not reader.is_alive()
    assert len(ended) == 1
    httpd.shutdown()
    httpd.server_close()
