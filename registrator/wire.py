"""HTTP/1.1 over kept-alive connections, for the adapters (Docker's API, the Consul agent).

Each event costs an inspect and an agent write, so a client's own cost counts: on the
benchmark machine an inspect through docker-py (requests) took 0.47 ms of CPU and through
`http.client` 0.12 ms; a register through httpx 0.5 ms and through `http.client` 0.15 ms. The
two libraries also held ~17 MB of the daemon's memory. Both APIs need little of a general
client: plain HTTP, TLS, a unix socket, a few headers, and Docker's event stream.

Connections are not shared between threads: each thread keeps its own (the daemon reconciles
several containers at once). A kept-alive connection the peer closed meanwhile is replaced
once, transparently. Every other failure is raised as it is (`OSError` or
`http.client.HTTPException`) for the adapter to translate into its own error.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

#: What a kept-alive connection the peer closed meanwhile raises on its next request.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
#: Everything a request can fail with below HTTP (no answer, a broken connection, TLS).
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


def path_segment(value: str) -> str:
    """`value` as one segment of a URL path (a service or container ID may hold anything)."""
    return quote(value, safe="!$&'()*+,;=:@")


@dataclass(frozen=True, slots=True)
class Answer:
    """A peer's answer: status and body."""

    status: int
    body: bytes
    #: the answer's headers as sent (Consul's `X-Consul-Index` for a blocking query)
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str:
        """The first header called `name` (any case), else ""."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket."""

    def __init__(self, path: str, *, timeout: float | None) -> None:
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


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a peer listens: `http(s)://host:port`, or a unix socket (then `base_url` only
    names it in messages)."""

    base_url: str
    uds: str | None = None
    tls: ssl.SSLContext | None = None

    def connect(self, timeout: float | None) -> http.client.HTTPConnection:
        """A new, not yet connected, connection."""
        if self.uds:
            return UnixHTTPConnection(self.uds, timeout=timeout)
        parts = urlsplit(self.base_url)
        host = parts.hostname or "localhost"
        if parts.scheme == "https":
            return _NoDelayHTTPS(host, parts.port, timeout=timeout, context=self.tls)
        return _NoDelayHTTP(host, parts.port, timeout=timeout)


class _NoDelayHTTP(http.client.HTTPConnection):
    """TCP without Nagle's algorithm: http.client writes a request's headers and body in two
    sends, and the body must not wait for the peer to acknowledge the headers."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _NoDelayHTTPS(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Connections:
    """Requests to one endpoint over one kept-alive connection per thread."""

    def __init__(
        self, endpoint: Endpoint, *, timeout: float, headers: dict[str, str] | None = None
    ) -> None:
        self.endpoint = endpoint
        self._timeout = timeout
        self._headers = headers or {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """One exchange; raises one of `TRANSPORT_ERRORS` when there is no answer."""
        sent = {**self._headers, **(headers or {})}
        for attempt in (1, 2):
            connection, reused = self._connection()
            try:
                return self._exchange(connection, method, url, body, sent, timeout)
            except STALE:
                self._drop(connection)
                if not reused or attempt == 2:
                    raise
            except TRANSPORT_ERRORS:
                self._drop(connection)
                raise
        raise AssertionError("unreachable")

    def stream(self, url: str) -> Stream:
        """A request whose answer never ends (Docker's events), on a connection of its own."""
        connection = self.endpoint.connect(timeout=None)
        try:
            connection.request("GET", url, headers=self._headers)
            response = connection.getresponse()
        except TRANSPORT_ERRORS:
            connection.close()
            raise
        return Stream(connection, response)

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def _exchange(  # noqa: PLR0917 (private, called once)
        self,
        connection: http.client.HTTPConnection,
        method: str,
        url: str,
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
        answer = Answer(response.status, response.read(), tuple(response.getheaders()))
        if response.will_close:
            self._drop(connection)
        return answer

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it was used before."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        connection = self.endpoint.connect(self._timeout)
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


class Stream:
    """An answer read line by line as it comes; `close()` from another thread ends it.

    Only the reading thread closes the connection: closing it under a blocked read would
    pull the buffer from under it. `close()` shuts the socket down, which ends the read.
    """

    def __init__(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> None:
        self._connection = connection
        self.response = response
        self._lock = threading.Lock()
        self._reading = False
        self._closed = False

    @property
    def status(self) -> int:
        return self.response.status

    def lines(self) -> Iterator[bytes]:
        """Each non-empty line; ends when the peer ends the answer (or `close()` is called:
        then the read fails, with `ValueError` or one of `TRANSPORT_ERRORS`)."""
        with self._lock:
            if self._closed:
                return
            self._reading = True
        try:
            while line := self.response.readline():
                if line.strip():
                    yield line
        finally:
            self._connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            reading = self._reading
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if not reading:
            self._connection.close()
