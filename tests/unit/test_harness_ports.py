"""The harness' one way of giving servers ports: a start retried on fresh ports when a port
was taken, a refusing port, a wait for a stopped server's ports."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from harness.ports import (
    AddressInUse,
    bindable,
    exited,
    refusing_port,
    start_on_free_ports,
    wait_released,
)


def test_a_start_that_finds_a_port_taken_is_retried_on_fresh_ports() -> None:
    given: list[list[int]] = []

    def start(ports: list[int]) -> str:
        given.append(ports)
        if len(given) < 3:
            raise AddressInUse("bind: address already in use")
        return "started"

    assert start_on_free_ports(2, start, what="a server") == "started"
    assert len(given) == 3
    assert all(len(set(ports)) == 2 for ports in given)
    assert given[0] != given[1] != given[2]


def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    def start(ports: list[int]) -> None:
        raise AddressInUse(f"port {ports[0]} taken")

    with pytest.raises(AddressInUse, match="taken"):
        start_on_free_ports(1, start, what="a server", attempts=3)


def test_any_other_failure_is_not_retried() -> None:
    calls: list[list[int]] = []

    def start(ports: list[int]) -> None:
        calls.append(ports)
        raise RuntimeError("bad configuration")

    with pytest.raises(RuntimeError, match="bad configuration"):
        start_on_free_ports(1, start, what="a server")
    assert len(calls) == 1


def test_a_real_server_that_cannot_bind_is_told_apart_by_what_it_says() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = subprocess.run(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert server.returncode != 0
    assert isinstance(exited("http.server", server.stderr), AddressInUse)
    assert not isinstance(exited("http.server", "no such file"), AddressInUse)


def test_a_refusing_port_refuses_connections_and_cannot_be_bound_meanwhile() -> None:
    with refusing_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        assert not bindable("127.0.0.1", port)
    assert bindable("127.0.0.1", port)


def test_waiting_for_a_stopped_servers_port_returns_once_it_is_released() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(AssertionError, match="released"):
            wait_released("127.0.0.1", [port], timeout=0.3)
    wait_released("127.0.0.1", [port], timeout=5)
