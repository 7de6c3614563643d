"""Translate `docker inspect` JSON into `Container`. Pure: no Docker client here.

Docker's inspect output varies by version and by how a container was created (null vs empty
lists, missing sections on created-but-never-started containers); this is the one place that
copes with that, so nothing downstream has to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from registrator.core.drain import SIGTERM, signal_number
from registrator.core.model import (
    Binding,
    Container,
    ContainerID,
    Health,
    NetworkAddress,
    Port,
    Protocol,
    SwarmTask,
)

_PROTOCOLS: frozenset[str] = frozenset({"tcp", "udp", "sctp"})
#: The labels Swarm puts on every task container.
SERVICE_ID = "com.docker.swarm.service.id"
SERVICE_NAME = "com.docker.swarm.service.name"
TASK_ID = "com.docker.swarm.task.id"
TASK_NAME = "com.docker.swarm.task.name"
#: Docker's stop timeout when a container sets none (`docker stop` without `-t`).
DEFAULT_STOP_TIMEOUT = 10


def container_from_inspect(data: Mapping[str, Any]) -> Container:
    """Build a `Container` from the dict Docker's inspect endpoint returns."""
    config = data.get("Config") or {}
    state = data.get("State") or {}
    host_config = data.get("HostConfig") or {}
    settings = data.get("NetworkSettings") or {}
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    return Container(
        id=ContainerID(str(data.get("Id", ""))),
        name=str(data.get("Name", "")).lstrip("/"),
        image=str(config.get("Image") or data.get("Image") or ""),
        env=parse_env(config.get("Env") or ()),
        labels=labels,
        status=str(state.get("Status") or ""),
        running=bool(state.get("Running")),
        paused=bool(state.get("Paused")),
        exit_code=int(state.get("ExitCode") or 0),
        network_mode=str(host_config.get("NetworkMode") or "default"),
        ports=_ports(config.get("ExposedPorts") or {}, settings.get("Ports") or {}),
        networks=_networks(settings),
        health=_health(config, state),
        swarm=swarm_task(labels),
        stop_signal=signal_number(str(config.get("StopSignal") or "")) or SIGTERM,
        stop_timeout=_stop_timeout(config.get("StopTimeout")),
        started_at=str(state.get("StartedAt") or ""),
    )


def swarm_task(labels: Mapping[str, str]) -> SwarmTask | None:
    """The Swarm task a container runs, from its labels; None for a plain container.

    The task name is `<service>.<slot>.<task id>` for a replicated service and
    `<service>.<node id>.<task id>` for a global one, which has no slot.
    """
    service_id, name, task_id = (labels.get(k, "") for k in (SERVICE_ID, SERVICE_NAME, TASK_ID))
    if not (service_id and name and task_id):
        return None
    middle = labels.get(TASK_NAME, "").removeprefix(f"{name}.").removesuffix(f".{task_id}")
    slot = middle if middle.isdigit() else ""
    return SwarmTask(service_id=service_id, service_name=name, task_id=task_id, slot=slot)


def parse_env(entries: Any) -> dict[str, str]:
    """`["A=1", "B"]` -> `{"A": "1", "B": ""}`; later entries win, as in a shell."""
    env: dict[str, str] = {}
    for entry in entries:
        key, _, value = str(entry).partition("=")
        if key:
            env[key] = value
    return env


def _stop_timeout(value: Any) -> int:
    """Config.StopTimeout: absent unless set (`--stop-timeout`, compose's stop_grace_period).

    -1 (wait for ever) counts as the default: a drain must end some time.
    """
    try:
        seconds = int(value) if value is not None else DEFAULT_STOP_TIMEOUT
    except (TypeError, ValueError):
        return DEFAULT_STOP_TIMEOUT
    return seconds if seconds >= 0 else DEFAULT_STOP_TIMEOUT


def split_port_key(key: str) -> tuple[int, Protocol] | None:
    number, _, protocol = key.partition("/")
    protocol = protocol or "tcp"
    if not number.isdigit() or protocol not in _PROTOCOLS:
        return None
    return int(number), cast(Protocol, protocol)


def _ports(exposed: Mapping[str, Any], published: Mapping[str, Any]) -> tuple[Port, ...]:
    keys = {*exposed.keys(), *published.keys()}
    ports: list[Port] = []
    for key in keys:
        split = split_port_key(str(key))
        if split is None:
            continue
        bindings = tuple(
            Binding(host_ip=str(b.get("HostIp") or ""), host_port=int(b["HostPort"]))
            for b in (published.get(key) or ())
            if str(b.get("HostPort") or "").isdigit()
        )
        ports.append(Port(port=split[0], protocol=split[1], bindings=bindings))
    return tuple(sorted(ports, key=lambda p: (p.port, p.protocol)))


def _health(config: Mapping[str, Any], state: Mapping[str, Any]) -> Health | None:
    """The HEALTHCHECK state, or None when there is none (or the image's is disabled: `NONE`).

    `State.Health` is absent until the first probe of a container Docker has never started.
    """
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    raw = state.get("Health") or {}
    probes = raw.get("Log") or []
    output = str((probes[-1] or {}).get("Output") or "").strip() if probes else ""
    return Health(status=str(raw.get("Status") or "starting"), output=output)


def _networks(settings: Mapping[str, Any]) -> dict[str, NetworkAddress]:
    """Network name -> the container's IPv4 and global IPv6 address there (both kept: a
    dual-stack network gives both, and the container chooses which one is registered)."""
    networks = {
        str(name): _addresses(net or {}) for name, net in (settings.get("Networks") or {}).items()
    }
    if not networks and _addresses(settings):
        networks["bridge"] = _addresses(settings)
    return networks


def _addresses(endpoint: Mapping[str, Any]) -> NetworkAddress:
    return NetworkAddress(
        ipv4=str(endpoint.get("IPAddress") or ""),
        ipv6=str(endpoint.get("GlobalIPv6Address") or ""),
    )
