"""What the registry holds of this registrator's services, kept in memory.

An event's reconcile plans against this instead of reading the registry before it writes, so
an event costs one inspect and its writes (a `die`: the writes alone). Every full pass (the
start-up, each resync, each agent check) reads the whole registry anyway and loads it here,
which corrects whatever changed behind registrator's back (an agent restarted empty, a service
edited by hand); in between, each write registrator makes is recorded as the registry applies
it. No event's reconcile runs during a full pass (the daemon holds its lanes), so the read
replaces everything.

Reconciles of different containers run at the same time. A plan and the writes it leads to
happen under the locks of the services it covers (`holding`), so two containers claiming one
service ID (a container recreated under its name, an explicit `SERVICE_ID` twice) never both
plan from the same state and both write.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

from registrator.core.model import Service, ServiceID
from registrator.core.plan import Action

#: Locks are striped: a service ID hashes to one of these; two services sharing a stripe
#: only wait for each other.
STRIPES = 64


#: what a write does to the registry's copy of a service (`Registry.applied`)
Applied = Callable[[Action, Service | None], Service | None]


class Mirror:
    """The registry's owned services as last read or written; `applied` says what each write
    does to the registry's copy (the registry's own `Registry.applied`)."""

    def __init__(self, applied: Applied) -> None:
        self._applied = applied
        self._lock = threading.Lock()
        self._services: dict[ServiceID, Service] = {}
        self._loaded = False
        self._stripes = tuple(threading.Lock() for _ in range(STRIPES))

    @property
    def loaded(self) -> bool:
        """Whether a full read has been loaded: until then, callers read the registry."""
        return self._loaded

    def __len__(self) -> int:
        return len(self._services)

    def load(self, services: dict[ServiceID, Service]) -> None:
        """Replace everything with a full read."""
        with self._lock:
            self._services = dict(services)
            self._loaded = True

    def view(self, ids: Collection[ServiceID] | None = None) -> dict[ServiceID, Service]:
        """The services held: all, or those of `ids`."""
        with self._lock:
            if ids is None:
                return dict(self._services)
            return {sid: self._services[sid] for sid in ids if sid in self._services}

    def record(self, action: Action) -> None:
        """The registry carried out `action`: hold what it holds now."""
        with self._lock:
            held = self._services.get(action.service_id)
            after = self._applied(action, held)
            if after is None:
                self._services.pop(action.service_id, None)
            else:
                self._services[action.service_id] = after

    @contextmanager
    def holding(self, ids: Collection[ServiceID]) -> Iterator[None]:
        """The locks of `ids`, taken in one order (no deadlock between two holders)."""
        stripes = sorted({zlib.crc32(sid.encode()) % STRIPES for sid in ids})
        for index in stripes:
            self._stripes[index].acquire()
        try:
            yield
        finally:
            for index in reversed(stripes):
                self._stripes[index].release()
