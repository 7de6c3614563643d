"""The agent's HTTP client: encoding, kept-alive connections per thread, stale ones replaced."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from registrator.core.errors import RegistryUnavailable
from registrator.registries.consul.transport import AgentHTTP, path_segment
from tests.support import free_ports


class _Echo(BaseHTTPRequestHandler):
    """Answers with what it got; after `close_after` requests on a connection, closes it
    without saying so (as an agent does with an idle kept-alive connection)."""

    protocol_version = "HTTP/1.1"
    close_after: ClassVar[int] = 0
    connections: ClassVar[list[int]] = []

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
    _Echo.close_after, _Echo.connections = 0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host, port = httpd.server_address[:2]
    yield f"http://{host!s}:{port}"
    httpd.shutdown()
    httpd.server_close()


def test_a_request_carries_the_token_the_query_and_a_json_body(server: str) -> None:
    http = AgentHTTP(server, token="secret")

    got = http.request(
        "PUT", "/v1/agent/x", params={"filter": 'ID == "a b"'}, payload={"ID": "a"}
    ).json()

    assert got == {
        "method": "PUT",
        "path": "/v1/agent/x?filter=ID%20%3D%3D%20%22a%20b%22",
        "body": '{"ID": "a"}',
        "token": "secret",
        "type": "application/json",
    }
    http.close()


def test_one_thread_keeps_its_connection_alive(server: str) -> None:
    http = AgentHTTP(server)

    for _ in range(3):
        assert http.request("GET", "/v1/status/leader").ok

    assert len(_Echo.connections) == 1
    http.close()


def test_threads_do_not_share_a_connection(server: str) -> None:
    http = AgentHTTP(server)
    http.request("GET", "/a")

    other = threading.Thread(target=lambda: http.request("GET", "/b"))
    other.start()
    other.join()

    assert len(_Echo.connections) == 2
    http.close()


def test_a_connection_the_agent_closed_is_replaced_once(server: str) -> None:
    _Echo.close_after = 1
    http = AgentHTTP(server)

    answers = [http.request("GET", f"/{n}").json()["path"] for n in range(3)]

    assert answers == ["/0", "/1", "/2"]
    assert len(_Echo.connections) == 3
    http.close()


def test_an_agent_that_does_not_answer_is_unavailable() -> None:
    (port,) = free_ports(1)
    http = AgentHTTP(f"http://127.0.0.1:{port}", timeout=1)

    with pytest.raises(RegistryUnavailable, match=f"GET http://127.0.0.1:{port}/v1/agent/self"):
        http.request("GET", "/v1/agent/self")


@pytest.mark.parametrize(
    ("value", "segment"),
    [("h:web:80", "h:web:80"), ('quote"d', "quote%22d"), ("a b/c%20", "a%20b%2Fc%2520")],
)
def test_an_id_is_one_path_segment_whatever_it_holds(value: str, segment: str) -> None:
    assert path_segment(value) == segment
