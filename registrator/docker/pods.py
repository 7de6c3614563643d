"""Podman pods: which container of a pod each of the pod's ports belongs to.

A pod's containers share the network of its infra container, and Podman's inspect reports every
port of the pod on each of them (the ports published with `podman pod create -p`), but none
they expose (`--expose` and an image's `EXPOSE` are dropped). Registered as reported, every
container of a pod would register every port of it. So each port gets one owner, the first of:

1. the container that declares it: a `SERVICE_<port>_*` key (the infra container counts: a
   pod's labels are its labels);
2. a container that exposes it, in its own configuration or its image's;
3. the infra container, when the pod's labels carry any `SERVICE_*` key (the pod asked);
4. the pod's only container besides the infra one;
5. the one container of the pod with a `SERVICE_NAME`.

Else nobody: a port of a pod with several containers that none of them claims is not
registered. Ties go to the first by name. Membership is read when a container is inspected: a
container joining a pod later changes its peers' shares at their next inspect (a resync).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registrator.core.model import Container, ContainerID, Port
from registrator.docker.inspect import parse_env, split_port_key
from registrator.wire import path_segment

#: libpod's own API (the pod, and which containers are in it), beside the compat one
LIBPOD = "/v4.0.0/libpod"
PREFIX = "SERVICE_"

#: GET a path of the engine's API: the decoded JSON, None when missing
Get = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Member:
    """What deciding a pod's ports needs of one of its containers."""

    id: ContainerID
    name: str
    infra: bool
    #: its `SERVICE_*` keys from env and labels, after the prefix, upper case
    keys: frozenset[str]
    #: the ports it exposes (`80/tcp`); the infra container's are the pod's
    exposed: frozenset[str]

    def declares(self, port: int) -> bool:
        return any(k.startswith(f"{port}_") for k in self.keys)


def member_from_inspect(
    data: Mapping[str, Any], *, infra: bool, image: Mapping[str, Any] | None = None
) -> Member:
    config = data.get("Config") or {}
    image_config = (image or {}).get("Config") or {}
    names = [*parse_env(config.get("Env") or ()), *(config.get("Labels") or {})]
    exposed = [*(config.get("ExposedPorts") or {}), *(image_config.get("ExposedPorts") or {})]
    if infra:
        exposed += [*((data.get("NetworkSettings") or {}).get("Ports") or {})]
    return Member(
        id=ContainerID(str(data.get("Id", ""))),
        name=str(data.get("Name", "")).lstrip("/"),
        infra=infra,
        keys=frozenset(str(n)[len(PREFIX) :].upper() for n in names if str(n).startswith(PREFIX)),
        exposed=frozenset(k for k in map(str, exposed) if split_port_key(k) is not None),
    )


def port_owner(key: str, members: Sequence[Member]) -> ContainerID | None:
    """The container `key` (`80/tcp`) is registered for, by the rules above; None for none."""
    split = split_port_key(key)
    apps = sorted((m for m in members if not m.infra), key=lambda m: (m.name, m.id))
    infra = [m for m in members if m.infra]
    if split is None:
        return None
    for m in (*apps, *infra):
        if m.declares(split[0]):
            return m.id
    for m in apps:
        if key in m.exposed:
            return m.id
    if infra and infra[0].keys:
        return infra[0].id
    named = [m for m in apps if "NAME" in m.keys]
    if len(apps) == 1 or len(named) == 1:
        return (apps if len(apps) == 1 else named)[0].id
    return None


def own_ports(container: Container, members: Sequence[Member]) -> tuple[Port, ...]:
    """The ports of the pod that are `container`'s, as it reported them when it did."""
    reported = {p.key: p for p in container.ports}
    keys = sorted({k for m in members for k in m.exposed}, key=_order)
    mine = [k for k in keys if port_owner(k, members) == container.id]
    return tuple(reported.get(k) or _port(k) for k in mine)


def _port(key: str) -> Port:
    number, protocol = split_port_key(key) or (0, "tcp")
    return Port(port=number, protocol=protocol)


def _order(key: str) -> tuple[int, str]:
    number, protocol = split_port_key(key) or (0, "tcp")
    return number, protocol


class PodReader:
    """Reads, through libpod's API, the pod a container is in, to give it its share of ports."""

    def __init__(self, get: Get) -> None:
        self._get = get

    def with_own_ports(self, found: Container) -> Container:
        """`found` with only its pod's ports that are its own; unchanged outside a pod."""
        if found.network_peer_id is None and not found.ports:
            return found  # no port to share out, or not in a pod's network
        pod = self._pod_of(found.id)
        infra = str(pod.get("InfraContainerID") or "")
        if not infra:
            return found  # no pod, or one without a shared network
        ids = [str(c.get("Id")) for c in pod.get("Containers") or ()]
        members = list(self._members(ids, infra))
        return dataclasses.replace(found, ports=own_ports(found, members))

    def _pod_of(self, container: ContainerID) -> Mapping[str, Any]:
        """libpod's inspect of the container's pod; {} when it is in none."""
        mine = self._get(f"{LIBPOD}/containers/{path_segment(container)}/json", missing_ok=True)
        pod_id = str((mine or {}).get("Pod") or "")
        if not pod_id:
            return {}
        return self._get(f"{LIBPOD}/pods/{path_segment(pod_id)}/json", missing_ok=True) or {}

    def _members(self, ids: Iterable[str], infra: str) -> Iterable[Member]:
        images: dict[str, Any] = {}
        for member in ids:
            data = self._get(f"/containers/{path_segment(member)}/json", missing_ok=True)
            if data is None:
                continue  # removed meanwhile
            image = str(data.get("Image") or "")
            if member != infra and image not in images:
                images[image] = self._get(f"/images/{path_segment(image)}/json", missing_ok=True)
            yield member_from_inspect(data, infra=member == infra, image=images.get(image))
