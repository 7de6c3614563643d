"""HTTP/1.1 to one Consul agent over kept-alive connections: the standard library's client.

Each event costs one agent write, so the client's own cost counts. On the benchmark machine a
register through httpx took 0.5 ms of CPU and through `http.client` 0.15 ms, and httpx and its
dependencies held 7 MB of the process. The agent API needs little of a general client: plain
HTTP, TLS with a CA and a client certificate, a unix socket, one header for the token.

Connections are not shared between threads: each thread that talks to the agent keeps its own
(the daemon reconciles several containers at once). A kept-alive connection the agent closed
meanwhile is replaced once, transparently; anything else is `RegistryUnavailable`.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from registrator.core.errors import RegistryUnavailable

#: What a kept-alive connection the peer closed meanwhile raises on its next request.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def path_segment(value: str) -> str:
    """`value` as one segment of a URL path (a service or check ID may hold any character)."""
    return quote(value, safe="!$&'()*+,;=:@")


@dataclass(frozen=True, slots=True)
class Answer:
    """The agent's answer: status and body."""

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, *, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AgentHTTP:
    """Requests to the agent at `base_url` (or over the unix socket `uds`)."""

    def __init__(
        self,
        base_url: str,
        *,
        uds: str | None = None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        timeout: float = 10,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._host = parts.hostname or "localhost"
        self._port = parts.port
        self._https = parts.scheme == "https"
        self._uds = uds
        self._tls = tls
        self._timeout = timeout
        self._headers = {"X-Consul-Token": token} if token else {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        payload: Any = None,
        timeout: float | None = None,
    ) -> Answer:
        """One request; a JSON `payload` is sent as the body. Raises `RegistryUnavailable`
        when the agent cannot be reached or does not answer in time."""
        url = f"{path}?{urlencode(params, quote_via=quote)}" if params else path
        headers = dict(self._headers)
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            connection, reused = self._connection()
            try:
                return self._exchange(
                    connection, method, url, body=body, headers=headers, timeout=timeout
                )
            except STALE as e:
                self._drop(connection)
                if not reused or attempt == 2:
                    raise self._unavailable(method, path, e) from e
            except (OSError, http.client.HTTPException) as e:
                self._drop(connection)
                raise self._unavailable(method, path, e) from e
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Answer:
        wait = self._timeout if timeout is None else timeout
        connection.timeout = wait
        if connection.sock is not None:
            connection.sock.settimeout(wait)
        connection.request(method, url, body=body, headers=headers)
        response = connection.getresponse()
        answer = Answer(response.status, response.read())
        if response.will_close:
            self._drop(connection)
        return answer

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it was used before."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        if self._uds:
            connection = _UnixConnection(self._uds, timeout=self._timeout)
        elif self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection, False

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._lock:
            self._open.discard(connection)

    def _unavailable(self, method: str, path: str, error: Exception) -> RegistryUnavailable:
        reason = str(error) or type(error).__name__
        return RegistryUnavailable(f"{method} {self.base_url}{path}: {reason}")
