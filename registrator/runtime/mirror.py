"""What the registry holds of this registrator's services, kept in memory.

An event's reconcile plans against this instead of reading the registry before it writes, so
an event costs one inspect and its writes (a `die`: the writes alone). Every full pass (the
start-up, each resync, each agent check) reads the whole registry anyway and loads it here,
which corrects whatever changed behind registrator's back (an agent restarted empty, a service
edited by hand); in between, each write registrator makes is recorded as the registry applies
it. A full read takes a few milliseconds during which events keep writing: services written
after the read began keep what was written, not what the older read saw.

Reconciles of different containers run at the same time. A plan and the writes it leads to
happen under the locks of the services it covers (`holding`), so two reconciles of one
service (an event and a full pass, say) never both plan from the same state and both write.
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
        #: service ID -> number of the last write recorded for it
        self._written: dict[ServiceID, int] = {}
        self._writes = 0
        self._loaded = False
        self._stripes = tuple(threading.Lock() for _ in range(STRIPES))

    @property
    def loaded(self) -> bool:
        """Whether a full read has been loaded: until then, callers read the registry."""
        return self._loaded

    def __len__(self) -> int:
        return len(self._services)

    def mark(self) -> int:
        """Taken just before a full read, and handed to `load` with its result."""
        with self._lock:
            return self._writes

    def load(self, services: dict[ServiceID, Service], *, since: int) -> None:
        """Replace everything with a full read that began at `since` (a `mark()`)."""
        with self._lock:
            newer = {sid for sid, number in self._written.items() if number > since}
            fresh = {sid: s for sid, s in services.items() if sid not in newer}
            fresh.update((sid, self._services[sid]) for sid in newer if sid in self._services)
            self._services = fresh
            self._written = {sid: n for sid, n in self._written.items() if sid in newer}
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
            self._writes += 1
            self._written[action.service_id] = self._writes
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
