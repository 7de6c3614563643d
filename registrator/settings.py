"""Settings: options, `REGISTRATOR_*` environment variables and Consul's own `CONSUL_*` ones.

Precedence: command-line flags, then `REGISTRATOR_<OPTION>`, then defaults. The CLI passes only
the flags a user actually gave, so an unset flag never hides an environment variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from registrator.consul_agent import ConsulTarget
from registrator.errors import ConfigError
from registrator.status import parse_listen_address

DEFAULT_REGISTRY = "consul://127.0.0.1:8500"
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class Settings(BaseSettings):
    """Every option registrator has; each is also `REGISTRATOR_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="REGISTRATOR_", extra="forbid", frozen=True)

    registry_uri: str = Field(default="", description="consul://, consul-tls:// or consul-unix://")
    hostname: str = Field(default="", description="host identity used in service IDs and Meta")
    ip: str = Field(default="", description="address registered for published ports")
    tags: str = Field(default="", description="comma-separated tags added to every service")
    resync_interval: float = Field(default=0, ge=0, description="seconds between full resyncs")
    # derivation (issue: the SERVICE_* contract)
    internal: bool = False
    explicit: bool = False
    use_ip_from_label: str = ""
    network: str = ""
    require_label: str = ""
    # checks
    ttl: int = Field(default=0, ge=0, description="seconds; a TTL check on every service")
    ttl_refresh: int = Field(default=0, ge=0, description="seconds between TTL refreshes")
    enable_script_checks: bool = False
    docker_health: bool = True
    # lifecycle
    cleanup: bool = False
    deregister: Literal["always", "on-success"] = "always"
    deregister_on_exit: bool = False
    agent_check_interval: float = Field(default=3, ge=0)
    retry_attempts: int = Field(default=-1, ge=-1)
    retry_interval: int = Field(default=2000, ge=0, description="milliseconds")
    # operations
    metrics_addr: str = ""
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("ip")
    @classmethod
    def _ip_or_host_name(cls, value: str) -> str:
        value = value.strip()
        if value and not _is_address(value) and not _HOST_NAME.match(value):
            raise ValueError(f"{value!r} is neither an IP address nor a host name")
        return value

    @field_validator("require_label")
    @classmethod
    def _label_named(cls, value: str) -> str:
        if value.startswith("="):
            raise ValueError(f"{value!r} names no label (LABEL or LABEL=VALUE)")
        return value

    @field_validator("ttl_refresh")
    @classmethod
    def _refresh_within_ttl(cls, value: int, info: ValidationInfo) -> int:
        """A refresh no sooner than the TTL lets every check expire between refreshes."""
        ttl = info.data.get("ttl", 0)
        if value and not ttl:
            raise ValueError("needs --ttl")
        if value and value >= ttl:
            raise ValueError(f"must be shorter than --ttl ({ttl})")
        return value

    @field_validator("metrics_addr")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if value:
            try:
                parse_listen_address(value)
            except ConfigError as e:
                raise ValueError(str(e)) from e
        return value

    @property
    def tag_list(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.tags.split(",") if t.strip())


def consul_target(uri: str, env: Mapping[str, str] | None = None) -> ConsulTarget:
    """Resolve the registry URI (else CONSUL_HTTP_ADDR, else the default) into a target."""
    env = os.environ if env is None else env
    uri = uri or _from_consul_env(env) or DEFAULT_REGISTRY
    parts = urlsplit(uri)
    token = _token(env)
    if parts.scheme in {"consul", "http"}:
        scheme = "https" if _is_true(env.get("CONSUL_HTTP_SSL", "")) else "http"
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
    if env.get("CONSUL_HTTP_SSL_VERIFY", "").lower() in {"false", "0", "no"}:
        return False
    return env.get("CONSUL_CACERT") or True


def _client_cert(env: Mapping[str, str]) -> tuple[str, str] | None:
    """Consul's CONSUL_CLIENT_CERT/KEY, else gliderlabs' own CONSUL_TLSCERT/TLSKEY."""
    cert = env.get("CONSUL_CLIENT_CERT") or env.get("CONSUL_TLSCERT")
    key = env.get("CONSUL_CLIENT_KEY") or env.get("CONSUL_TLSKEY")
    return (cert, key) if cert and key else None


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_true(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}
