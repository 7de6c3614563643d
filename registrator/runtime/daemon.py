"""The long-running loops: Docker events in, reconciles out.

The watcher thread (`Watcher`) hands each event to its container's lane (`Lanes`): a few
threads reconcile several containers at once, each container's events in order, coalesced while
one of its batches runs. The worker (the caller of `run`) runs the full passes: their reads
beside the lanes, their plan and writes with the lanes held (`Lanes.held`). So a container's
state is changed by one thread at a time, and events wait only for a pass's plan and for what
it writes (only what drifted). Timers add them: the periodic resync (Docker and Consul), the
agent check (Consul only, against what is already known: it repairs an agent that restarted
empty or was edited by hand within seconds, and writes nothing when all is well) and the
re-assertion of the TTL checks registrator drives (Docker health, `--ttl`); a new or broken
subscription adds one too. The worker also wakes at the deadline of each drain in progress, to
lift a drain whose container was not stopped after all. A Swarm service update goes to a lane
of its own (its tasks here are derived again). A registry whose keys hang on a lease (etcd,
Consul KV) gets a thread of its own (`heartbeat`), and so do catalog mode's probes (`probes`).
Any failed reconcile owes a full pass. Stopping is one `threading.Event`; closing the event
stream unblocks the watcher.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from functools import partial

from loguru import logger

from registrator.core.errors import BackendError, RegistryDenied, RegistryUnavailable
from registrator.core.ports import EventSource
from registrator.runtime.executor import Outcome
from registrator.runtime.heartbeat import Heartbeat, keep_alive
from registrator.runtime.lanes import Lanes
from registrator.runtime.observer import NULL_OBSERVER, Observer
from registrator.runtime.probes import ProbeRunner
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import FailureStreak, RetryPolicy
from registrator.runtime.watcher import Watcher
from registrator.runtime.work import FullPass, Item, Pending, Timer

#: Threads reconciling containers named by events: each waits mostly on Docker or the agent.
EVENT_WORKERS = 4


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
        heartbeat: Heartbeat | None = None,
        heartbeat_interval: float = 0,
        probes: ProbeRunner | None = None,
        reaper: Callable[[], None] | None = None,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._observer = observer
        self._clock = clock  # the timers' and the drain deadlines' (tests pass a fake one)
        self._streak = FailureStreak()
        self._reconciler = reconciler
        self._timers = [
            (Timer(resync_interval, clock=clock), FullPass.RESYNC),
            (Timer(agent_check_interval, clock=clock), FullPass.AGENT_CHECK),
            (Timer(refresh_interval, clock=clock), FullPass.AGENT_CHECK | FullPass.REFRESH),
        ]
        self._heartbeat = heartbeat
        self._heartbeat_interval = heartbeat_interval
        self._probes = probes
        self._reaper = reaper
        self._retry = retry or RetryPolicy()
        self.stop = stop or threading.Event()
        self._queue: queue.Queue[Item | None] = queue.Queue()
        self._watcher = Watcher(events, retry=self._retry, stop=self.stop, observer=observer)
        self.reconciled = threading.Event()  # set after the first complete reconcile
        #: keyed by container ID, or by `SERVICE_LANE` + a Swarm service's ID
        self._lanes: Lanes[str, Pending] = Lanes(
            self._handle_events, batch=Pending, workers=EVENT_WORKERS, name="events"
        )

    def run(self) -> None:
        watcher, *others = self.threads()
        for thread in (watcher, *others):
            thread.start()
        pending = Pending()
        try:
            while not self.stop.is_set():
                pending = self._collect(pending, self._timeout(pending))
                for timer, item in self._timers:
                    if timer.fire():
                        pending.add(item)
                self._lift_drains()
                if pending and not self.stop.is_set():
                    pending = self.step(pending)
        finally:
            self.request_stop()
            watcher.join(timeout=5)
            self._lanes.stop()

    def _lift_drains(self) -> None:
        """Lift the drains past their deadline, with the lanes held (a lift changes its
        container), and reconcile their containers on their lanes."""
        now = self._clock()
        if (self._reconciler.drain_deadline() or float("inf")) > now:
            return
        with self._lanes.held():
            lifted = self._reconciler.lift_drains(now)
        for container in lifted:
            self._lanes.add(container, container)

    def threads(self) -> list[threading.Thread]:
        """Every thread beside the worker (the caller of `run`), built and named here, not
        started: the watcher first, then the lanes' `events-N`, and what the registry needs
        (a lease's `heartbeat`; catalog mode's `probes` and `catalog-reaper`)."""
        watch = (self._lanes, self._reconciler.may_drain, self._queue.put)
        named: dict[str, Callable[[], None]] = {"docker-events": partial(self._watcher.run, *watch)}
        if self._heartbeat is not None and self._heartbeat_interval > 0:
            lost = lambda: self._queue.put(FullPass.AGENT_CHECK)  # noqa: E731
            beat = (self._heartbeat, self._heartbeat_interval)
            named["heartbeat"] = partial(keep_alive, *beat, stop=self.stop, on_lost=lost)
        if self._probes is not None:  # a changed status reconciles its container, on its lane
            named["probes"] = partial(self._probes.run, self.stop, lambda c: self._lanes.add(c, c))
        if self._reaper is not None:
            named["catalog-reaper"] = self._reaper
        own = [threading.Thread(target=t, name=n, daemon=True) for n, t in named.items()]
        return [own[0], *self._lanes.threads, *own[1:]]

    def request_stop(self) -> None:
        self.stop.set()
        self._queue.put(None)
        self._watcher.close()

    def step(self, work: Pending) -> Pending:
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
        _log_done(work, outcome, seconds=seconds, cpu_seconds=time.process_time() - cpu)
        self._observe(work, outcome, seconds)
        if not outcome.ok:
            return self._failed(work)
        self._streak.ended()
        if work.full is not None and work.full.docker:
            self.reconciled.set()
        return Pending()

    def _reconcile(self, work: Pending) -> Outcome:
        """The containers events named first, then the full pass if one is owed.

        A full pass re-reads only containers whose name or state changed (or none, for the
        agent check), so a `health_status` or network event batched with a timer would be lost.
        """
        if work.containers or work.services:
            outcome = self._reconciler.changes(work.changes())
            if work.full is None or not outcome.ok:
                return outcome
        return self._full(work.full or FullPass.RESYNC)

    def _full(self, full: FullPass) -> Outcome:
        """A full pass: its reads made while the lanes run, what it decides and writes with
        them held (only the worker owes full passes: never a lane). A read that a lane may
        have overtaken (it ran meanwhile) is made again, held. So events wait for the pass's
        plan and writes, not for its reads."""
        mark = self._lanes.mark()
        read = self._reconciler.read(full)
        with self._lanes.held():
            if not self._lanes.quiet_since(mark):
                read = self._reconciler.read(full)
            return self._reconciler.full(full, read)

    def _failed(self, work: Pending) -> Pending:
        self._streak.failed()
        owed = Pending()
        owed.add(work.full or FullPass.RESYNC)
        owed.add(FullPass.RESYNC)
        return owed

    def _observe_failure(self, error: BackendError) -> None:
        self._observer.failed("reconcile.failed")
        if isinstance(error, RegistryUnavailable):
            self._streak.lost_registry()

    def _observe(self, work: Pending, outcome: Outcome, seconds: float) -> None:
        scope = "containers" if work.full is None else work.full.scope
        self._observer.reconciled(scope=scope, seconds=seconds, ok=outcome.ok)
        if self._streak.registry_back():
            self._observer.reconnected("registry")

    def _timeout(self, pending: Pending) -> float | None:
        if pending:
            failures = self._streak.failures
            return self._retry.backoff(failures) if failures else 0.0
        due = min(timer.due for timer, _ in self._timers)
        due = min(due, self._reconciler.drain_deadline() or float("inf"))
        return None if due == float("inf") else max(0.0, due - self._clock())

    def _collect(self, pending: Pending, timeout: float | None) -> Pending:
        """Wait up to `timeout` for work, then take everything already queued with it."""
        try:
            item = self._queue.get(timeout=timeout)
            while True:
                if item is not None:
                    pending.add(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            return pending

    def _handle_events(self, work: Pending) -> None:
        """One container's pending events, on a lane's thread; a failure owes a full pass."""
        try:
            owed = self.step(work)
        except Exception:
            logger.exception("reconcile.crashed")
            owed = self._failed(work)
        if owed.full is not None and not self.stop.is_set():
            self._queue.put(owed.full)
        elif work.signalled:
            self._queue.put(None)  # a drain may have started: the worker sets its alarm for it


def _log_done(work: Pending, outcome: Outcome, *, seconds: float, cpu_seconds: float) -> None:
    """The reconcile's counts, its wall time and the process CPU time it took."""
    scope = "containers" if work.full is None else work.full.scope
    logger.debug(
        "reconcile.done",
        scope=scope,
        containers=",".join(sorted(c[:12] for c in work.containers)),
        registered=outcome.registered,
        updated=outcome.updated,
        deregistered=outcome.deregistered,
        checks_updated=outcome.done.get("check.status", 0),
        unchanged=outcome.plan.unchanged,
        inspected=outcome.inspected,
        seconds=round(seconds, 4),
        cpu_seconds=round(cpu_seconds, 4),
    )
