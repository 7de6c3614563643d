"""What to register instead when a registry refuses a service (HTTP 400).

Our own checks catch the values we know a registry refuses; a refusal is for the rest (a
duration beyond Consul's range, a limit a newer agent enforces). Nothing a registry refuses
may cost the service: it is registered without the refused part, first without its checks
(a check held critical takes their place, naming the registry's message), then also without
its Meta. The runtime remembers the refusal, so the refused write is not repeated until the
container or the options change what is desired.
"""

from __future__ import annotations

import dataclasses

from registrator.core.checks import refusal_stand_in
from registrator.core.model import OWNER_META_KEY, Service
from registrator.core.policy import DEFAULT_DRIVEN_TTL


def fallback(desired: Service, refused: Service, message: str) -> Service | None:
    """The next, plainer version of `desired` to try after the registry refused `refused`
    with `message`; None when nothing is left to leave out."""
    stand_in = refusal_stand_in(desired, message, ttl=DEFAULT_DRIVEN_TTL)
    if refused == desired:
        return dataclasses.replace(desired, checks=(stand_in,))
    owner_only = tuple((k, v) for k, v in desired.meta if k == OWNER_META_KEY)
    if refused.meta != owner_only:
        return dataclasses.replace(desired, checks=(stand_in,), meta=owner_only)
    return None
