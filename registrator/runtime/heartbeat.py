"""The heartbeat: keeps a registry's lease (etcd) or session (Consul KV) alive on its own clock.

It runs in a thread of its own, so a long reconcile never lets the lease lapse. A failed beat
is tried again within a second (logged once, then quietly, until it works again); a lease that
was lost meanwhile is reported to `on_lost`, which asks for a full pass that writes every key
again under a new one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger

from registrator.core.errors import BackendError

#: keeps the lease alive; True when it had been lost since the last call
Heartbeat = Callable[[], bool]


def keep_alive(
    heartbeat: Heartbeat, interval: float, *, stop: threading.Event, on_lost: Callable[[], None]
) -> None:
    """Beat every `interval` seconds until `stop` is set."""
    failing = False
    wait = interval
    while not stop.wait(wait):
        try:
            lost = heartbeat()
        except BackendError as e:
            log = logger.debug if failing else logger.warning
            log("registry.heartbeat_failed", error=str(e))
            failing, wait = True, min(interval, 1.0)
            continue
        if failing:
            logger.info("registry.heartbeat_restored")
        failing, wait = False, interval
        if lost:
            logger.warning("registry.lease_lost", hint="every key is written again")
            on_lost()
