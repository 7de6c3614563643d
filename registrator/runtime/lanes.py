"""Work for many keys on a few threads: one key's work in order, different keys at once.

The daemon hands each container's events to its lane. A burst of events for a hundred
containers is reconciled a few containers at a time (each waits mostly on Docker and the
agent, not on the CPU), while the events of any one container are reconciled in the order they
came, one batch after the other: what arrives while a container's batch runs is coalesced into
its next one. The periodic passes run elsewhere, so no event waits behind them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

from loguru import logger


class Batch(Protocol):
    """Pending work of one key: items are added to it until it is handed to a thread."""

    def add(self, item: Any) -> None: ...


K = TypeVar("K", bound=Hashable)
B = TypeVar("B", bound=Batch)


class Lanes(Generic[K, B]):
    """`add(key, item)` from any thread; `handle(batch)` runs on one of `workers` threads."""

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
        self._lock = threading.Condition()
        self._pending: dict[K, B] = {}  # not yet handed to a thread
        self._ready: deque[K] = deque()  # keys with pending work and nothing running
        self._running: set[K] = set()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> Lanes[K, B]:
        for thread in self._threads:
            thread.start()
        return self

    def add(self, key: K, item: Any) -> None:
        with self._lock:
            batch = self._pending.get(key)
            if batch is None:
                batch = self._pending[key] = self._batch()
                if key not in self._running:
                    self._ready.append(key)
                    self._lock.notify()
            batch.add(item)

    def idle(self) -> bool:
        """Nothing pending and nothing running."""
        with self._lock:
            return not self._pending and not self._running

    def stop(self, *, timeout: float = 5) -> None:
        """Let running batches finish (up to `timeout`); pending ones are dropped."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._ready and not self._stopped:
                    self._lock.wait()
                if self._stopped:
                    return
                key = self._ready.popleft()
                batch = self._pending.pop(key)
                self._running.add(key)
            try:
                self._handle(batch)
            except Exception:
                logger.exception("lane.failed")
            finally:
                self._done(key)

    def _done(self, key: K) -> None:
        with self._lock:
            self._running.discard(key)
            if key in self._pending:
                self._ready.append(key)
                self._lock.notify()
