"""What to register instead when a registry refuses a service (HTTP 400).

Our own checks catch the values we know a registry refuses; a refusal is for the rest (a
duration beyond Consul's range, a limit a newer agent enforces). Nothing a registry refuses
may cost the service: it is registered without the refused part, first without its checks
(a check held critical takes their place, naming the registry's message), then also without
its Meta. A service in Consul Connect first loses its sidecar (or native mark) alone: a
refused sidecar never costs the service it proxies. The runtime remembers the refusal, so
the refused write is not repeated until the container or the options change what is desired.
"""

from __future__ import annotations

import dataclasses
import itertools

from registrator.core.checks import refusal_stand_in
from registrator.core.model import OWNER_META_KEY, Service
from registrator.core.policy import DEFAULT_DRIVEN_TTL


def fallback(desired: Service, refused: Service, message: str) -> Service | None:
    """The next, plainer version of `desired` to try after the registry refused `refused`
    with `message`; None when nothing is left to leave out."""
    ladder = _ladder(desired, message)
    for plainer, after in itertools.pairwise(ladder):
        if _shape(plainer) == _shape(refused):
            return after
    return None


def _shape(service: Service) -> Service:
    """A step of the ladder whatever message its stand-in check carries."""
    checks = tuple(dataclasses.replace(c, output="") for c in service.checks)
    return dataclasses.replace(service, checks=checks)


def _ladder(desired: Service, message: str) -> list[Service]:
    """`desired`, then each plainer version in the order they are tried."""
    steps = [desired]
    if desired.connect is not None:
        steps.append(dataclasses.replace(desired, connect=None))
    stand_in = refusal_stand_in(desired, message, ttl=DEFAULT_DRIVEN_TTL)
    steps.append(dataclasses.replace(steps[-1], checks=(stand_in,)))
    owner_only = tuple((k, v) for k, v in desired.meta if k == OWNER_META_KEY)
    if desired.meta != owner_only:
        steps.append(dataclasses.replace(steps[-1], meta=owner_only))
    return steps
