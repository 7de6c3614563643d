"""The one place a registry is opened from its URI: the daemon, `--resync`, the readiness
probe and `explain` all come through `open_registry`.

    consul://HOST:PORT, consul-tls://, consul-unix:///path   the local Consul agent (default)
    consul-catalog://HOST:PORT, consul-catalog-tls://        Consul's catalog, a node of its own
    consulkv://HOST:PORT/PREFIX, consulkv-tls://...          Consul's KV store
    etcd://HOST:PORT/PREFIX                                  etcd v3
    skydns2://HOST:PORT/DOMAIN                               CoreDNS's etcd layout, in etcd v3

For the key-value registries `--ttl` is the lease (etcd) or session (Consul KV) TTL, 30 s by
default, and `heartbeat` keeps it alive every `heartbeat_interval` seconds (`--ttl-refresh`,
else a third of the TTL). `zookeeper://` is refused with one line: see the README.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from registrator.core.errors import ConfigError
from registrator.core.ports import Registry
from registrator.registries.catalog.liveness import SESSION_TTL, Liveness
from registrator.registries.consul.agent import ConsulAgent
from registrator.registries.consul.target import consul_target
from registrator.registries.consulkv.store import ConsulKVStore
from registrator.registries.etcd.store import EtcdStore
from registrator.registries.kv.layout import Layout, skydns_prefix
from registrator.registries.kv.leased import LeasedRegistry

SCHEMES = (
    "consul, consul-tls, consul-unix, consul-catalog, consul-catalog-tls, consulkv, "
    "consulkv-tls, etcd or skydns2"
)
#: --ttl's default for the registries whose keys hang on a lease or session
DEFAULT_LEASE_TTL = 30
ETCD_PORT = 2379
_UNSUPPORTED = {
    "zookeeper": "zookeeper:// is not supported (its ephemeral nodes need a client session "
    "that no HTTP API offers; see README, Registries): use consul://, consulkv:// or etcd://",
    "etcd2": "etcd's v2 API is off by default since etcd 3.4: use etcd:// (etcd v3)",
}


@dataclass(frozen=True, slots=True)
class Opened:
    """A registry ready for use, and what the daemon needs to know of it."""

    registry: Registry
    #: the URI scheme's family: consul, consulkv, etcd or skydns2
    kind: str
    #: where it is, for log lines
    where: str
    #: returns when the registry answers within the timeout (readiness), else raises
    ping: Callable[[float], None]
    close: Callable[[], None]
    #: keeps the lease or session alive; True when it was lost (write everything again)
    heartbeat: Callable[[], bool] | None = None
    heartbeat_interval: float = 0
    #: the lease or session TTL (`--ttl` for these registries); 0 for the Consul agent
    lease_ttl: int = 0
    #: the catalog registry's node: named by the host identity, at `--ip` (catalog mode)
    own_node: Callable[[str, str], None] | None = None
    #: catalog mode's session and node lock, for the reaper of dead hosts
    liveness: Liveness | None = None

    @property
    def agentless(self) -> bool:
        """No agent runs checks: registrator probes them itself (catalog mode)."""
        return self.own_node is not None

    @property
    def keyed(self) -> bool:
        """Services are keys: no checks, no maintenance mode, and `--ttl` is the lease's."""
        return self.kind not in {"consul", "consul-catalog"}


def open_registry(
    uri: str,
    *,
    ttl: int = 0,
    ttl_refresh: int = 0,
    health: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = 10,
    session_ttl: int = 0,
) -> Opened:
    """The registry `uri` names (else $CONSUL_HTTP_ADDR, else the local Consul agent)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in _UNSUPPORTED:
        raise ConfigError(_UNSUPPORTED[scheme])
    lease = ttl or DEFAULT_LEASE_TTL
    interval = float(ttl_refresh) if ttl_refresh else max(0.2, lease / 3)
    if scheme in {"etcd", "skydns2"}:
        registry, where = _etcd(uri, scheme, lease=lease, health=health, timeout=timeout)
        return _leased(registry, scheme, where, interval=interval, lease=lease)
    if scheme in {"consul-catalog", "consul-catalog-tls"}:
        return _catalog(uri, scheme, env=env, timeout=timeout, session_ttl=session_ttl)
    if scheme in {"consulkv", "consulkv-tls"}:
        kv = _consulkv(uri, scheme, lease=lease, health=health, env=env, timeout=timeout)
        return _leased(kv, "consulkv", uri, interval=interval, lease=lease)
    try:
        agent = ConsulAgent(consul_target(uri, env), timeout=timeout)
    except ConfigError as e:
        if "scheme must be" in str(e):
            raise ConfigError(f"registry URI {uri!r}: scheme must be {SCHEMES}") from e
        raise
    return Opened(
        agent,
        "consul",
        uri or "consul",
        ping=lambda seconds: agent.ping(timeout=seconds),
        close=agent.close,
    )


def _leased(
    registry: LeasedRegistry, kind: str, where: str, *, interval: float, lease: int
) -> Opened:
    return Opened(
        registry,
        kind,
        where,
        ping=lambda seconds: registry.ping(timeout=seconds),
        close=registry.close,
        heartbeat=registry.heartbeat,
        heartbeat_interval=interval,
        lease_ttl=lease,
    )


def _catalog(
    uri: str, scheme: str, *, env: Mapping[str, str] | None, timeout: float, session_ttl: int = 0
) -> Opened:
    from registrator.registries.catalog.registry import ConsulCatalog  # noqa: PLC0415

    agent_scheme = "consul-tls" if scheme.endswith("-tls") else "consul"
    netloc = urlsplit(uri).netloc
    target = consul_target(f"{agent_scheme}://{netloc}", os.environ if env is None else env)
    catalog = ConsulCatalog(target, timeout=timeout)
    ping = lambda seconds: catalog.ping(timeout=seconds)  # noqa: E731
    liveness = Liveness(ConsulAgent(target, timeout=timeout), ttl=session_ttl or SESSION_TTL)

    def own_node(name: str, address: str) -> None:
        catalog.own_node(name, address)
        liveness.own(name)

    def close() -> None:
        catalog.close()
        liveness.close()

    return Opened(
        catalog,
        "consul-catalog",
        uri,
        ping,
        close,
        own_node=own_node,
        heartbeat=liveness.heartbeat,
        heartbeat_interval=liveness.ttl / 3,
        liveness=liveness,
    )


def _etcd(
    uri: str, scheme: str, *, lease: int, health: bool, timeout: float
) -> tuple[LeasedRegistry, str]:
    """The registry, and where it is (for log lines)."""
    parts = urlsplit(uri)
    if not parts.hostname:
        raise ConfigError(f"registry URI {uri!r} names no host")
    try:
        port = parts.port or ETCD_PORT
    except ValueError as e:
        raise ConfigError(f"registry URI {uri!r}: {e}") from e
    path = parts.path.rstrip("/")
    if scheme == "skydns2":
        try:
            layout = Layout(skydns_prefix(path.lstrip("/")), "skydns")
        except ValueError as e:
            raise ConfigError(f"registry URI {uri!r}: {e} (skydns2://HOST:PORT/DOMAIN)") from e
    else:
        layout = Layout(path)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    store = EtcdStore(f"http://{host}:{port}", prefix=layout.prefix, timeout=timeout)
    registry = LeasedRegistry(store, layout, ttl=lease, health=health)
    return registry, f"{scheme} {store.base_url}{layout.prefix}"


def _consulkv(
    uri: str,
    scheme: str,
    *,
    lease: int,
    health: bool,
    env: Mapping[str, str] | None,
    timeout: float,
) -> LeasedRegistry:
    parts = urlsplit(uri)
    prefix = parts.path.strip("/")
    if not prefix:
        raise ConfigError(f"registry URI {uri!r} names no key prefix (consulkv://HOST:PORT/PREFIX)")
    agent_scheme = "consul-tls" if scheme.endswith("-tls") else "consul"
    target = consul_target(f"{agent_scheme}://{parts.netloc}", os.environ if env is None else env)
    store = ConsulKVStore(target, prefix=prefix, timeout=timeout)
    return LeasedRegistry(store, Layout(prefix), ttl=lease, health=health)
