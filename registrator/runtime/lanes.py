"""Work for many keys on a few threads: one key's work in order, different keys at once.

The daemon hands each container's events to its lane. A burst of events for a hundred
containers is reconciled a few containers at a time (each waits mostly on Docker and the
agent, not on the CPU), while the events of any one container are reconciled in the order they
came, one batch after the other: what arrives while a container's batch runs is coalesced into
its next one.

The full passes run on the daemon's worker while the lanes are `held`: no batch runs then, and
what arrives meanwhile waits in its key's pending batch. So a container's state is changed by
one thread at a time: its lane, or the full pass while no lane runs. A pass reads before it
holds them: `mark` and `quiet_since` tell it whether any batch ran while it read.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from loguru import logger


class Batch(Protocol):
    """Pending work of one key: items are added to it until it is handed to a thread."""

    def add(self, item: Any) -> None: ...


K = TypeVar("K", bound=Hashable)
B = TypeVar("B", bound=Batch)


class Lanes(Generic[K, B]):
    """`add(key, item)` from any thread; `handle(batch)` runs on one of `workers` threads.

    Idle workers wait on a `queue.SimpleQueue` of the keys that are ready to run: its wake-up
    is the cheapest hand-over between threads the standard library has.
    """

    def __init__(
        self,
        handle: Callable[[B], None],
        *,
        batch: Callable[[], B],
        workers: int,
        name: str = "lane",
    ) -> None:
        self._handle = handle
        self._batch = batch
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # notified when a batch ends
        self._pending: dict[K, B] = {}  # not yet handed to a thread
        self._running: set[K] = set()
        self._held = False
        self._parked: set[K] = set()  # ready while held: handed out once released
        self._ready: queue.SimpleQueue[K | None] = queue.SimpleQueue()  # None: stop
        self._handed = 0  # batches handed to a thread so far (see `mark`)
        self._stopped = False
        #: built, not started: `start` (or whoever starts every thread, `Daemon.threads`)
        self.threads = tuple(
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        )

    def start(self) -> Lanes[K, B]:
        for thread in self.threads:
            thread.start()
        return self

    def add(self, key: K, item: Any) -> None:
        with self._lock:
            batch = self._pending.get(key)
            ready = batch is None and key not in self._running
            if batch is None:
                batch = self._pending[key] = self._batch()
            batch.add(item)
        if ready:
            self._ready.put(key)

    def idle(self) -> bool:
        """Nothing pending and nothing running."""
        with self._lock:
            return not self._pending and not self._running

    def mark(self) -> int | None:
        """Where the lanes are, for `quiet_since`: None while a batch runs."""
        with self._lock:
            return None if self._running else self._handed

    def quiet_since(self, mark: int | None) -> bool:
        """No batch has run since `mark` was taken (none was running then either)."""
        with self._lock:
            return mark == self._handed and not self._running

    @contextmanager
    def held(self) -> Iterator[None]:
        """No batch runs inside: the running ones end first, the pending ones wait. Only one
        thread holds the lanes (the daemon's worker): holders are not counted."""
        with self._lock:
            self._held = True
            self._settled.wait_for(lambda: not self._running)
        try:
            yield
        finally:
            with self._lock:
                self._held = False
                parked, self._parked = self._parked, set()
            for key in parked:
                self._ready.put(key)

    def stop(self, *, timeout: float = 5) -> None:
        """Let running batches finish (up to `timeout`); pending ones are dropped."""
        self._stopped = True
        for _ in self.threads:
            self._ready.put(None)
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout=timeout)

    def _work(self) -> None:
        while (key := self._ready.get()) is not None and not self._stopped:
            with self._lock:
                if self._held:
                    self._parked.add(key)
                    continue
                batch = self._pending.pop(key)
                self._running.add(key)
                self._handed += 1
            try:
                self._handle(batch)
            except Exception:
                logger.exception("lane.failed")
            finally:
                self._done(key)

    def _done(self, key: K) -> None:
        with self._lock:
            self._running.discard(key)
            ready = key in self._pending
            self._settled.notify_all()
        if ready:
            self._ready.put(key)
