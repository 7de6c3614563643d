"""Settings: options, `REGISTRATOR_*` environment variables and Consul's own `CONSUL_*` ones.

Precedence: command-line flags, then `REGISTRATOR_<OPTION>`, then defaults. The CLI passes only
the flags a user actually gave, so an unset flag never hides an environment variable. The
variables are read by a plain pydantic model: pydantic-settings did the same for ~6 MB more of
the daemon's memory.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from registrator.app.listen import parse_listen_address
from registrator.core.durations import MAX_NANOSECONDS
from registrator.core.errors import ConfigError
from registrator.core.policy import CheckPolicy, Policy
from registrator.runtime.retry import RetryPolicy

_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)

#: The longest duration Consul takes, in whole seconds (`--ttl` is sent as one).
MAX_SECONDS = MAX_NANOSECONDS // 1_000_000_000


ENV_PREFIX = "REGISTRATOR_"


class Settings(BaseModel):
    """Every option registrator has; each is also `REGISTRATOR_<NAME>` in the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry_uri: str = Field(
        default="",
        description="consul://, consul-tls://, consul-unix://, consulkv://, etcd://, skydns2://",
    )
    hostname: str = Field(default="", description="host identity used in service IDs and Meta")
    ip: str = Field(
        default="", validate_default=True, description="address registered for published ports"
    )
    tags: str = Field(default="", description="comma-separated tags added to every service")
    resync_interval: float = Field(default=0, ge=0, description="seconds between full resyncs")
    # derivation (issue: the SERVICE_* contract)
    internal: bool = False
    explicit: bool = False
    use_ip_from_label: str = ""
    network: str = ""
    require_label: str = ""
    # checks
    ttl: int = Field(
        default=0, ge=0, le=MAX_SECONDS, description="seconds; a TTL check on every service"
    )
    ttl_refresh: int = Field(default=0, ge=0, description="seconds between TTL refreshes")
    enable_script_checks: bool = False
    docker_health: bool = True
    #: etcd, Consul KV, SkyDNS: leave out services that are unhealthy, paused or draining
    kv_health: bool = True
    # lifecycle
    cleanup: bool = False
    deregister: Literal["always", "on-success"] = "always"
    drain: Literal["maintenance", "deregister", "off"] = "maintenance"
    deregister_on_exit: bool = False
    agent_check_interval: float = Field(default=3, ge=0)
    retry_attempts: int = Field(default=-1, ge=-1)
    retry_interval: int = Field(default=2000, ge=0, description="milliseconds")
    give_up_after: float = Field(default=30, gt=0, description="seconds; one-shot commands")
    # catalog mode: dead hosts (registries/catalog/liveness.py)
    reap_after: float = Field(default=300, ge=0, description="seconds; 0: never reap")
    #: Consul takes session TTLs from 10 s (its servers' `session_ttl_min`) to 24 h
    session_ttl: int = Field(default=15, ge=1, le=86400, description="seconds")
    # operations
    metrics_addr: str = ""
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, given: Any) -> Any:
        """`REGISTRATOR_<NAME>` (any case) for each option not given."""
        if not isinstance(given, dict):
            return given
        env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
        names = {f"{ENV_PREFIX}{name.upper()}": name for name in cls.model_fields}
        found = {names[key]: value for key, value in env.items() if key in names}
        return {**found, **given}

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("ip")
    @classmethod
    def _ip_or_host_name(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not value and agentless(info.data.get("registry_uri", "")):
            raise ValueError("consul-catalog:// needs --ip: the address of this host's node")
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


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def agentless(uri: str) -> bool:
    """Catalog mode: no Consul agent on the host runs checks or holds the services."""
    return uri.strip().lower().startswith(("consul-catalog://", "consul-catalog-tls://"))


def for_registry(settings: Settings, *, keyed: bool) -> Settings:
    """For a registry of keys (etcd, Consul KV), `--ttl` is its lease's TTL, not a TTL check on
    every service: the settings the core sees have no `--ttl`."""
    return settings.model_copy(update={"ttl": 0, "ttl_refresh": 0}) if keyed else settings


def derive_policy(settings: Settings, identity: str) -> Policy:
    """What the core needs of the settings, for the host identity `identity`."""
    return Policy(
        hostname=identity,
        host_ip=settings.ip,
        tags=settings.tag_list,
        internal=settings.internal,
        explicit=settings.explicit,
        use_ip_from_label=settings.use_ip_from_label,
        network=settings.network,
        require_label=settings.require_label,
        keep_failed=settings.deregister == "on-success",
        drain=settings.drain,
        checks=check_policy(settings),
    )


def check_policy(settings: Settings) -> CheckPolicy:
    return CheckPolicy(
        enable_script_checks=settings.enable_script_checks,
        docker_health=settings.docker_health,
        agentless=agentless(settings.registry_uri),
        ttl=settings.ttl,
        ttl_refresh=settings.ttl_refresh,
    )


def retry_policy(settings: Settings, *, one_shot: bool) -> RetryPolicy:
    """The one place retries are shaped. The daemon retries its lifelines forever and each
    call a few times (a failed pass is owed again); a one-shot command (`--resync`) keeps
    trying an unreachable peer for `--give-up-after` seconds, then exits naming it."""
    if one_shot:
        return RetryPolicy(attempts=1_000_000, seconds=settings.give_up_after, maximum=2.0)
    return RetryPolicy()
