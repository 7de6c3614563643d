"""The long-running loops: Docker events in, reconciles out.

The watcher thread holds the Docker event subscription and hands each event to its container's
lane (`Lanes`): a few threads reconcile several containers at once, each container's events in
order, coalesced while one of its batches runs. When the stream ends or breaks (Docker
restarted, socket gone) it reconnects with backoff and asks for a full reconcile with fresh
inspects, because events may have been missed meanwhile. The worker (the caller of `run`) runs
the full passes beside the lanes, so no event waits behind one. Timers add them: the periodic
resync (Docker and Consul), the agent check (Consul only, against what is already known: it
repairs an agent that restarted empty or was edited by hand within seconds, and writes nothing
when all is well) and the re-assertion of the TTL checks registrator drives (Docker health,
`--ttl`). Any failed reconcile owes a full pass. Stopping is one `threading.Event`; closing the
event stream unblocks the watcher.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger

from registrator.core.errors import BackendError, RegistryDenied, RegistryUnavailable
from registrator.core.model import ContainerID
from registrator.runtime.executor import Outcome
from registrator.runtime.lanes import Lanes
from registrator.runtime.observer import NULL_OBSERVER, Observer
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import RetryPolicy, Stopped
from registrator.runtime.work import Changes, FullPass
from registrator.runtime.work import Timer as _Timer


class _HasContainer(Protocol):
    @property
    def container(self) -> ContainerID: ...
    @property
    def action(self) -> str: ...
    @property
    def exit_code(self) -> int | None: ...


class Subscription(Protocol):
    def __iter__(self) -> Iterator[_HasContainer]: ...
    def close(self) -> None: ...


class EventSource(Protocol):
    def events(self) -> Subscription: ...


#: Docker sends these while it starts or cleans up a container too, not only on a user's
#: `docker network connect`.
NETWORK_ACTIONS = frozenset({"connect", "disconnect"})
#: Threads reconciling containers named by events: each waits mostly on Docker or the agent.
EVENT_WORKERS = 4


@dataclass
class _Work:
    """What the worker owes: at most one full pass, plus the containers events named.

    `exited` holds the containers whose latest lifecycle event was `die`, with the exit code
    it reported. Only a `start` undoes that; the `disconnect` and `destroy` that follow a
    `die` do not. `network_only` holds those with nothing but network events pending.
    """

    full: FullPass | None = None
    containers: set[ContainerID] = field(default_factory=set)
    exited: dict[ContainerID, int] = field(default_factory=dict)
    network_only: set[ContainerID] = field(default_factory=set)

    def add(self, item: _HasContainer | ContainerID | FullPass) -> None:
        if isinstance(item, str):
            self.containers.add(item)
            self.network_only.discard(item)
        elif not isinstance(item, FullPass):
            self._add_event(item)
        else:
            self.full = item if self.full is None else self.full.merge(item)

    def changes(self) -> Changes:
        return Changes(frozenset(self.containers), dict(self.exited), frozenset(self.network_only))

    def _add_event(self, item: _HasContainer) -> None:
        if item.action in NETWORK_ACTIONS:
            if item.container not in self.containers:
                self.network_only.add(item.container)
        else:
            self.network_only.discard(item.container)
        self.containers.add(item.container)
        if item.action == "die" and item.exit_code is not None:
            self.exited[item.container] = item.exit_code
        elif item.action == "start":
            self.exited.pop(item.container, None)

    def __bool__(self) -> bool:
        return self.full is not None or bool(self.containers)


class Daemon:
    """Runs the watcher and the worker until `stop` is set."""

    def __init__(
        self,
        reconciler: Reconciler,
        events: EventSource,
        *,
        resync_interval: float = 0,
        agent_check_interval: float = 0,
        refresh_interval: float = 0,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._observer = observer
        #: Consul was unreachable on the last attempt; its return is counted as a reconnect
        self._consul_lost = False
        self._reconciler = reconciler
        self._events = events
        self._timers = [
            (_Timer(resync_interval), FullPass()),
            (_Timer(agent_check_interval), FullPass(docker=False)),
            (_Timer(refresh_interval), FullPass(docker=False, refresh=True)),
        ]
        self._retry = retry or RetryPolicy()
        self.stop = stop or threading.Event()
        self._queue: queue.Queue[_HasContainer | ContainerID | FullPass | None] = queue.Queue()
        self._subscription: Subscription | None = None
        self._failures = 0
        self.reconciled = threading.Event()  # set after the first complete reconcile
        self._lanes: Lanes[ContainerID, _Work] = Lanes(
            self._handle_events, batch=_Work, workers=EVENT_WORKERS, name="events"
        )

    def run(self) -> None:
        self._lanes.start()
        watcher = threading.Thread(target=self._watch, name="docker-events", daemon=True)
        watcher.start()
        pending = _Work()
        try:
            while not self.stop.is_set():
                pending = self._collect(pending, self._timeout(pending))
                for timer, item in self._timers:
                    if timer.fire():
                        pending.add(item)
                if pending and not self.stop.is_set():
                    pending = self.step(pending)
        finally:
            self.request_stop()
            watcher.join(timeout=5)
            self._lanes.stop()

    def request_stop(self) -> None:
        self.stop.set()
        self._queue.put(None)
        if self._subscription is not None:
            self._subscription.close()

    def step(self, work: _Work) -> _Work:
        """One reconcile for everything in `work`; returns what is still owed after it.

        After any failure a full reconcile is owed: a scoped retry could miss a service whose
        container changed meanwhile (a rename drops the old service ID from the scope).
        """
        started, cpu = time.monotonic(), time.process_time()
        try:
            outcome = self._reconcile(work)
        except RegistryDenied as e:
            self._reconciler.report_denied(e)
            return self._failed(work)
        except BackendError as e:
            logger.warning("reconcile.failed", error=str(e))
            self._observe_failure(e)
            return self._failed(work)
        seconds = time.monotonic() - started
        self._log_done(work, outcome, seconds=seconds, cpu_seconds=time.process_time() - cpu)
        self._observe(work, outcome, seconds)
        if not outcome.ok:
            return self._failed(work)
        self._failures = 0
        if work.full is not None and work.full.docker:
            self.reconciled.set()
        return _Work()

    def _reconcile(self, work: _Work) -> Outcome:
        """The containers events named first, then the full pass if one is owed.

        A full pass re-reads only containers whose name or state changed (or none, for the
        agent check), so a `health_status` or network event batched with a timer would be lost.
        """
        if work.containers:
            outcome = self._reconciler.changes(work.changes())
            if work.full is None or not outcome.ok:
                return outcome
        return self._reconciler.full(work.full)

    def _failed(self, work: _Work) -> _Work:
        self._failures += 1
        owed = _Work()
        owed.add(work.full or FullPass())
        owed.add(FullPass())
        return owed

    def _observe_failure(self, error: BackendError) -> None:
        self._observer.failed("reconcile.failed")
        self._consul_lost = self._consul_lost or isinstance(error, RegistryUnavailable)

    def _observe(self, work: _Work, outcome: Outcome, seconds: float) -> None:
        scope = "containers" if work.full is None else work.full.scope
        self._observer.reconciled(scope=scope, seconds=seconds, ok=outcome.ok)
        if self._consul_lost:
            self._observer.reconnected("consul")
            self._consul_lost = False

    @staticmethod
    def _log_done(work: _Work, outcome: Outcome, *, seconds: float, cpu_seconds: float) -> None:
        """The reconcile's counts, its wall time and the process CPU time it took."""
        scope = "containers" if work.full is None else work.full.scope
        logger.debug(
            "reconcile.done",
            scope=scope,
            registered=outcome.registered,
            updated=outcome.updated,
            deregistered=outcome.deregistered,
            checks_updated=outcome.done.get("check.status", 0),
            unchanged=outcome.plan.unchanged,
            inspected=outcome.inspected,
            seconds=round(seconds, 4),
            cpu_seconds=round(cpu_seconds, 4),
        )

    def _timeout(self, pending: _Work) -> float | None:
        if pending:
            return self._retry.backoff(self._failures) if self._failures else 0.0
        due = min(timer.due for timer, _ in self._timers)
        return None if due == float("inf") else max(0.0, due - time.monotonic())

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

    def _watch(self) -> None:
        reinspect = False
        while not self.stop.is_set():
            try:
                self._subscription = self._retry.forever(
                    "docker.events.subscribe", self._events.events, stop=self.stop
                )
            except Stopped:
                return
            if reinspect:
                logger.info("docker.events.reconnected")
                self._observer.reconnected("docker")
            else:
                logger.info("docker.events.subscribed")
            self._queue.put(FullPass(reinspect=reinspect))
            try:
                self._forward(self._subscription)
                if not self.stop.is_set():
                    logger.warning("docker.events.closed")
                    self._observer.failed("docker.events.closed")
            except BackendError as e:
                if not self.stop.is_set():
                    logger.warning("docker.events.broken", error=str(e))
                    self._observer.failed("docker.events.broken")
            reinspect = True

    def _forward(self, events: Iterable[_HasContainer]) -> None:
        for event in events:
            logger.debug("docker.event", action=event.action, container=event.container[:12])
            self._lanes.add(event.container, event)

    def _handle_events(self, work: _Work) -> None:
        """One container's pending events, on a lane's thread; a failure owes a full pass."""
        try:
            owed = self.step(work)
        except Exception:
            logger.exception("reconcile.crashed")
            owed = self._failed(work)
        if owed.full is not None and not self.stop.is_set():
            self._queue.put(owed.full)
