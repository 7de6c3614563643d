"""Where the Consul agent is and how to reach it: the registry URI and Consul's own variables.

`consul://HOST:PORT`, `consul-tls://HOST:PORT` and `consul-unix:///path.sock`, else
`CONSUL_HTTP_ADDR`, else the default; `CONSUL_HTTP_TOKEN(_FILE)`, `CONSUL_HTTP_SSL(_VERIFY)`,
`CONSUL_CACERT` and the client certificate variables, Consul's and gliderlabs' spellings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from registrator.core.errors import ConfigError
from registrator.core.flags import parse_flag

DEFAULT_REGISTRY = "consul://127.0.0.1:8500"


@dataclass(frozen=True, slots=True)
class ConsulTarget:
    """Where and how to reach the agent, resolved from the registry URI and CONSUL_* variables."""

    base_url: str
    uds: str | None = None
    token: str | None = None
    verify: bool | str = True
    cert: tuple[str, str] | None = None


def consul_target(uri: str, env: Mapping[str, str] | None = None) -> ConsulTarget:
    """Resolve the registry URI (else CONSUL_HTTP_ADDR, else the default) into a target."""
    env = os.environ if env is None else env
    uri = uri or _from_consul_env(env) or DEFAULT_REGISTRY
    parts = urlsplit(uri)
    token = _token(env)
    if parts.scheme in {"consul", "http"}:
        scheme = "https" if parse_flag(env.get("CONSUL_HTTP_SSL", "")) is True else "http"
        return ConsulTarget(base_url=f"{scheme}://{_host_port(parts.netloc, uri)}", token=token)
    if parts.scheme in {"consul-tls", "https"}:
        return ConsulTarget(
            base_url=f"https://{_host_port(parts.netloc, uri)}",
            token=token,
            verify=_verify(env),
            cert=_client_cert(env),
        )
    if parts.scheme in {"consul-unix", "unix"}:
        if not parts.path:
            raise ConfigError(f"registry URI {uri!r} names no socket path")
        return ConsulTarget(base_url="http://consul", uds=parts.path, token=token)
    raise ConfigError(f"registry URI {uri!r}: scheme must be consul, consul-tls or consul-unix")


def _from_consul_env(env: Mapping[str, str]) -> str:
    addr = env.get("CONSUL_HTTP_ADDR", "").strip()
    if not addr:
        return ""
    return addr if "://" in addr else f"consul://{addr}"


def _host_port(netloc: str, uri: str) -> str:
    if not netloc:
        raise ConfigError(f"registry URI {uri!r} names no host")
    return netloc if ":" in netloc.rsplit("]", 1)[-1] else f"{netloc}:8500"


def _token(env: Mapping[str, str]) -> str | None:
    if env.get("CONSUL_HTTP_TOKEN"):
        return env["CONSUL_HTTP_TOKEN"]
    path = env.get("CONSUL_HTTP_TOKEN_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as e:
            raise ConfigError(f"CONSUL_HTTP_TOKEN_FILE={path}: {e.strerror}") from e
    return None


def _verify(env: Mapping[str, str]) -> bool | str:
    if parse_flag(env.get("CONSUL_HTTP_SSL_VERIFY", "")) is False:
        return False
    return env.get("CONSUL_CACERT") or True


def _client_cert(env: Mapping[str, str]) -> tuple[str, str] | None:
    """Consul's CONSUL_CLIENT_CERT/KEY, else gliderlabs' own CONSUL_TLSCERT/TLSKEY."""
    cert = env.get("CONSUL_CLIENT_CERT") or env.get("CONSUL_TLSCERT")
    key = env.get("CONSUL_CLIENT_KEY") or env.get("CONSUL_TLSKEY")
    return (cert, key) if cert and key else None
