"""Where the Docker engine is and how to reach it, from the environment as Docker's CLI reads it.

`DOCKER_HOST` (default `unix:///var/run/docker.sock`): `unix:///path` or `tcp://HOST:PORT`
(also `http://`, `https://`). TLS is on when `DOCKER_TLS_VERIFY` is set to anything but ""
(then the engine's certificate is verified against `ca.pem`) or `DOCKER_CERT_PATH` is set;
the client certificate is `cert.pem` and `key.pem` in `DOCKER_CERT_PATH` (default
`~/.docker`). These are the rules docker-py and the docker CLI follow.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from registrator.core.errors import ConfigError
from registrator.wire import Endpoint

DEFAULT_HOST = "unix:///var/run/docker.sock"


def docker_endpoint(env: Mapping[str, str] | None = None) -> Endpoint:
    """The engine's endpoint; ConfigError for a DOCKER_HOST this client cannot reach."""
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST") or DEFAULT_HOST
    parts = urlsplit(host)
    if parts.scheme == "unix" or host.startswith("/"):
        path = parts.path if parts.scheme == "unix" else host
        if not path:
            raise ConfigError(f"DOCKER_HOST={host} names no socket path")
        return Endpoint(f"unix://{path}", uds=path)
    if parts.scheme not in {"tcp", "http", "https"} or not parts.hostname:
        raise ConfigError(f"DOCKER_HOST={host}: use unix:///path or tcp://HOST:PORT")
    cert_path = env.get("DOCKER_CERT_PATH") or ""
    verify = env.get("DOCKER_TLS_VERIFY") not in {None, ""}
    secure = parts.scheme == "https" or verify or bool(cert_path)
    port = parts.port or (2376 if secure else 2375)
    netloc = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if not secure:
        return Endpoint(f"http://{netloc}:{port}")
    certs = Path(cert_path) if cert_path else Path.home() / ".docker"
    return Endpoint(f"https://{netloc}:{port}", tls=_tls_context(certs, verify=verify))


def _tls_context(certs: Path, *, verify: bool) -> ssl.SSLContext:
    """The client certificate from `certs`, and the engine's verified against its ca.pem."""
    ca, cert, key = (certs / name for name in ("ca.pem", "cert.pem", "key.pem"))
    try:
        context = ssl.create_default_context(cafile=str(ca) if verify else None)
        if cert.exists() or key.exists():
            context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(
            f"Docker TLS files in {certs}: {getattr(e, 'strerror', None) or e}"
        ) from e
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
