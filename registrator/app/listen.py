"""`--metrics-addr` values: where the status server listens, and where a local client finds it."""

from __future__ import annotations

import ipaddress

from registrator.core.errors import ConfigError


def parse_listen_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (every interface) or `[IPV6]:PORT` -> (host, port). Port 0 asks
    the system for a free port; the `status.listening` log line names the one it gave."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{text!r} is not HOST:PORT")
    host = host.removeprefix("[").removesuffix("]")
    if host and ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError as e:
            raise ConfigError(f"{text!r}: {host!r} is not an IPv6 address") from e
    return host, int(port)
