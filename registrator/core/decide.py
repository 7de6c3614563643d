"""What a container should have registered: the one decision the daemon and `explain` share.

`derive` turns a running container into services. The rules that depend on the container's
state, not its declarations, are applied here, after it: a paused container's services go
into maintenance mode; a container draining after its stop signal is drained (`drain.py`);
a container that exited with an error under `-deregister on-success` keeps what it had. Both
the reconcile path and `registrator explain` call `decide`, so what `explain` prints is what
the daemon does.
"""

from __future__ import annotations

import dataclasses

from registrator.core.derive import derive
from registrator.core.drain import drained
from registrator.core.model import Container, Derivation
from registrator.core.policy import Policy

#: Maintenance reasons, as the registry shows them to operators.
PAUSED = "container paused"
#: Exit codes from 128 on are deaths by a signal (`docker stop`, an OOM kill): deregistered.
_SIGNALLED = 128


def decide(container: Container, policy: Policy, previous: Derivation | None = None) -> Derivation:
    """The services `container` should have now; `previous` is what it was decided to have
    when it was last seen (a kept container keeps those)."""
    if keeps(container, policy):
        return _kept(container, policy, previous)
    derivation = derive(container, policy)
    if container.paused:
        paused = tuple(dataclasses.replace(s, maintenance=PAUSED) for s in derivation.services)
        derivation = dataclasses.replace(derivation, services=paused)
    return drained(container, derivation, policy)


def keeps(container: Container, policy: Policy) -> bool:
    """`-deregister on-success`: a container that exited with an error keeps its services.

    Exit 0 and exits by a signal (128 + n: `docker stop`, an OOM kill) deregister.
    """
    return (
        policy.keep_failed
        and not container.running
        and container.status == "exited"
        and 0 < container.exit_code < _SIGNALLED
    )


def _kept(container: Container, policy: Policy, previous: Derivation | None) -> Derivation:
    why = f"exited with code {container.exit_code}: services kept (-deregister on-success)"
    services = previous.services if previous is not None else ()
    adopt = "" if services else f"{policy.hostname}:{container.name}:"
    if previous is not None and previous.adopt:
        adopt = previous.adopt
    return Derivation(services=services, skipped=(("container", why),), kept=True, adopt=adopt)
