"""A counting HTTP proxy in front of the Consul agent: what registrator asks, and when it is done.

Registrator is pointed at the proxy instead of the agent. Every request is forwarded over a
kept-alive connection and recorded with its method, path, status, the service a write names,
and when the agent answered. The agent applies a registration before it answers, so the answer's
time is when the service became visible in `/v1/agent/services`, observed without polling
(polling would load the two cores the benchmark measures).
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import unquote, urlsplit

WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})
REGISTER_PATH = "/v1/agent/service/register"
DEREGISTER_PREFIX = "/v1/agent/service/deregister/"
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request through the proxy."""

    method: str
    path: str
    status: int
    started_ns: int
    answered_ns: int
    #: the service ID a register or deregister names ("" for anything else)
    service: str = ""
    #: the request's body (a catalog transaction's operations, say)
    body: bytes = b""

    @property
    def write(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def route(self) -> str:
        """The path with the service ID of a deregister folded, so counts group by endpoint."""
        if self.path.startswith(DEREGISTER_PREFIX):
            return DEREGISTER_PREFIX + ":id"
        return self.path


def service_named(method: str, path: str, body: bytes) -> str:
    """The service ID a register body or deregister path names, else ""."""
    if method == "PUT" and path == REGISTER_PATH:
        try:
            return str(json.loads(body or b"{}").get("ID") or "")
        except (ValueError, AttributeError):
            return ""
    if path.startswith(DEREGISTER_PREFIX):
        return unquote(path[len(DEREGISTER_PREFIX) :])
    return ""


def counts(exchanges: Iterable[Exchange]) -> Counter[str]:
    """Requests per `METHOD route`."""
    return Counter(f"{e.method} {e.route}" for e in exchanges)


class CountingProxy:
    """Forwards to `upstream` (host:port) and records every exchange; thread per connection.

    Writes are also indexed by `key(service)` (the service ID itself by default), so a
    benchmark can find the answer to one service's write without scanning them all; the
    benchmark keys by container name, which every registrator puts in its service IDs.
    """

    def __init__(
        self, upstream: str, *, key: Callable[[str], str] = str, timeout: float = 30
    ) -> None:
        """`timeout`: how long an answer may take (more than a blocking query's wait)."""
        self.upstream = upstream
        self.timeout = timeout
        self._key = key
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._by_key: dict[str, list[Exchange]] = {}
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="counting-proxy", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)
            if exchange.service:
                self._by_key.setdefault(self._key(exchange.service), []).append(exchange)

    def exchanges(self, *, since: int = 0) -> list[Exchange]:
        """Exchanges recorded from position `since` (a value of `mark()`) on."""
        with self._lock:
            return self._exchanges[since:]

    def mark(self) -> int:
        with self._lock:
            return len(self._exchanges)

    def answered(self, key: str, *, register: bool, after_ns: int = 0) -> int | None:
        """When the agent first acknowledged a (de)registration of the service `key` names
        (see `key` above) that started after `after_ns`."""
        with self._lock:
            writes = list(self._by_key.get(key, ()))
        for e in writes:
            kind_matches = (e.path == REGISTER_PATH) == register
            if e.ok and kind_matches and e.started_ns >= after_ns:
                return e.answered_ns
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: CountingProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went before its answer (a blocking query given up, a registrator
        stopped) is no error of the proxy's: only other exceptions are printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: headers and body go out as two writes; with Nagle on, the second waits for a delayed ACK
    disable_nagle_algorithm = True
    _upstream: http.client.HTTPConnection | None = None

    def do_GET(self) -> None:
        self._forward()

    do_PUT = do_POST = do_DELETE = do_GET

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the proxy records exchanges instead of logging them."""

    def _forward(self) -> None:
        started = time.time_ns()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, payload = self._ask_upstream(body)
        answered = time.time_ns()
        path = urlsplit(self.path).path
        exchange = Exchange(
            self.command,
            path,
            status,
            started,
            answered,
            service_named(self.command, path, body),
            body,
        )
        # recorded before the client has its answer, so whoever it tells finds the record
        cast(_Server, self.server).proxy.record(exchange)
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _ask_upstream(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The agent's answer; one reconnect when a kept-alive connection was closed under us."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        for attempt in (1, 2):
            if self._upstream is None:
                proxy = cast(_Server, self.server).proxy
                self._upstream = http.client.HTTPConnection(proxy.upstream, timeout=proxy.timeout)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                return response.status, response.getheaders(), response.read()
            except (http.client.HTTPException, OSError):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
