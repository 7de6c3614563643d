"""The options that shape what a container's services look like, and what derivation found.

`Policy` is the part of the settings the core reads; `Findings` gathers, while one container
is derived, the declarations it could not honour and the ports it deliberately left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from registrator.core.model import Problem

#: values longer than this are shortened in log lines (the whole value is still judged)
_SHOWN = 200

#: TTL (seconds) of the checks registrator drives when `--ttl` is not given: long enough to
#: ride out a restart or an upgrade of registrator, short enough that a host where it stopped
#: shows up in Consul instead of reporting stale health forever.
DEFAULT_DRIVEN_TTL = 600

#: `--drain`: what a container's services become when it receives its stop signal.
DrainMode = Literal["maintenance", "deregister", "off"]


@dataclass(frozen=True, slots=True)
class CheckPolicy:
    """The options that shape checks: `--enable-script-checks`, `--docker-health`, `--ttl`."""

    enable_script_checks: bool = False
    docker_health: bool = True
    #: catalog mode: no agent runs checks, registrator probes HTTP and TCP ones itself
    agentless: bool = False
    ttl: int = 0
    ttl_refresh: int = 0

    @property
    def driven_ttl(self) -> int:
        """TTL, in seconds, of every check whose status registrator sets."""
        return self.ttl or DEFAULT_DRIVEN_TTL

    @property
    def refresh_interval(self) -> float:
        """Seconds between re-assertions of those checks, well within their TTL."""
        return float(self.ttl_refresh) or self.driven_ttl / 3


@dataclass(frozen=True, slots=True)
class Policy:
    """The part of the settings that shapes derivation."""

    hostname: str
    host_ip: str = ""  # -ip: address for published ports
    advertise_address: str = ""  # the local Consul agent's address, the last fallback
    tags: tuple[str, ...] = ()  # -tags: added to every service
    internal: bool = False  # -internal: the container's own address and port
    explicit: bool = False  # -explicit: only ports with SERVICE_NAME or SERVICE_<port>_NAME
    use_ip_from_label: str = ""  # -useIpFromLabel: the label that holds the address
    network: str = ""  # --network: the network whose container address is registered
    require_label: str = ""  # --require-label: LABEL or LABEL=VALUE a container must carry
    keep_failed: bool = False  # -deregister on-success: keep the services of a failed container
    drain: DrainMode = "maintenance"  # --drain: services of a container being stopped
    connect: bool = True  # the registry is a Consul agent: Consul Connect can be asked of it
    checks: CheckPolicy = field(default_factory=CheckPolicy)


class Findings:
    """Problems and skips gathered while one container is derived; each is reported once."""

    def __init__(self, container: str) -> None:
        self.container = container
        self.problems: list[Problem] = []
        self.skipped: list[tuple[str, str]] = []
        #: the first Connect key met where Connect cannot be honoured, "" when none was
        self.connect_ignored = ""

    def problem(self, key: str, value: str, reason: str) -> None:
        if len(value) > _SHOWN:
            value = f"{value[:_SHOWN]}... ({len(value)} characters)"
        found = Problem(self.container, key, value, reason)
        if found not in self.problems:
            self.problems.append(found)

    def skip(self, what: str, why: str) -> None:
        if (what, why) not in self.skipped:
            self.skipped.append((what, why))
