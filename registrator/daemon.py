"""The long-running loops: Docker events in, coalesced reconciles out.

Two threads. The watcher holds the Docker event subscription and turns events into work items;
when the stream ends or breaks (Docker restarted, socket gone) it reconnects with backoff and
asks for a full reconcile, because events may have been missed meanwhile. The worker (the
caller of `run`) drains all pending work into one reconcile, so a burst of events costs one
pass. Stopping is one `threading.Event`; closing the event stream unblocks the watcher.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger

from registrator.errors import BackendError
from registrator.model import ContainerID
from registrator.reconcile import Reconciler
from registrator.retry import RetryPolicy, Stopped


class Subscription(Protocol):
    def __iter__(self) -> Iterator[_HasContainer]: ...
    def close(self) -> None: ...


class _HasContainer(Protocol):
    @property
    def container(self) -> ContainerID: ...


class EventSource(Protocol):
    def events(self) -> Subscription: ...


@dataclass
class _Work:
    """What the worker owes: a full reconcile and/or some containers."""

    full: bool = False
    reinspect: bool = False
    containers: set[ContainerID] = field(default_factory=set)

    def add(self, item: ContainerID | _Full) -> None:
        if isinstance(item, _Full):
            self.full = True
            self.reinspect = self.reinspect or item.reinspect
        else:
            self.containers.add(item)

    def __bool__(self) -> bool:
        return self.full or bool(self.containers)


@dataclass(frozen=True, slots=True)
class _Full:
    reinspect: bool = False


class Daemon:
    """Runs the watcher and the worker until `stop` is set."""

    def __init__(
        self,
        reconciler: Reconciler,
        events: EventSource,
        *,
        resync_interval: float = 0,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._reconciler = reconciler
        self._events = events
        self._resync_interval = resync_interval
        self._retry = retry or RetryPolicy()
        self.stop = stop or threading.Event()
        self._queue: queue.Queue[ContainerID | _Full | None] = queue.Queue()
        self._subscription: Subscription | None = None
        self._failures = 0

    def run(self) -> None:
        watcher = threading.Thread(target=self._watch, name="docker-events", daemon=True)
        watcher.start()
        pending = _Work()
        next_resync = self._next_resync()
        try:
            while not self.stop.is_set():
                pending = self._collect(pending, self._timeout(pending, next_resync))
                if next_resync is not None and time.monotonic() >= next_resync:
                    pending.add(_Full())
                    next_resync = self._next_resync()
                if pending and not self.stop.is_set():
                    pending = self.step(pending)
        finally:
            self.stop.set()
            self._close_subscription()
            watcher.join(timeout=5)

    def request_stop(self) -> None:
        self.stop.set()
        self._queue.put(None)
        self._close_subscription()

    def step(self, work: _Work) -> _Work:
        """One reconcile for everything in `work`; returns what is still owed after it."""
        try:
            if work.full:
                outcome = self._reconciler.reconcile(None, reinspect=work.reinspect)
            else:
                outcome = self._reconciler.reconcile(work.containers)
        except BackendError as e:
            logger.warning("reconcile.failed", error=str(e))
            self._failures += 1
            return work
        logger.debug(
            "reconcile.done",
            scope="full" if work.full else "containers",
            registered=outcome.registered,
            updated=outcome.updated,
            deregistered=outcome.deregistered,
            unchanged=outcome.plan.unchanged,
        )
        if outcome.ok:
            self._failures = 0
            return _Work()
        self._failures += 1
        return _Work(full=True)

    def _timeout(self, pending: _Work, next_resync: float | None) -> float | None:
        if pending:
            return self._retry.backoff(self._failures) if self._failures else 0.0
        if next_resync is None:
            return None
        return max(0.0, next_resync - time.monotonic())

    def _collect(self, pending: _Work, timeout: float | None) -> _Work:
        """Wait up to `timeout` for work, then take everything already queued with it."""
        try:
            item = self._queue.get(timeout=timeout)
            while True:
                if item is not None:
                    pending.add(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            return pending

    def _next_resync(self) -> float | None:
        return time.monotonic() + self._resync_interval if self._resync_interval > 0 else None

    def _watch(self) -> None:
        reinspect = False
        while not self.stop.is_set():
            try:
                self._subscription = self._retry.forever(
                    "docker.events.subscribe", self._events.events, stop=self.stop
                )
            except Stopped:
                return
            logger.info("docker.events.subscribed")
            self._queue.put(_Full(reinspect=reinspect))
            try:
                self._forward(self._subscription)
                if not self.stop.is_set():
                    logger.warning("docker.events.closed")
            except BackendError as e:
                logger.warning("docker.events.broken", error=str(e))
            reinspect = True

    def _forward(self, events: Iterable[_HasContainer]) -> None:
        for event in events:
            self._queue.put(event.container)

    def _close_subscription(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
