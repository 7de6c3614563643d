"""The one reconcile path: Docker says what should be registered, the registry what is; the
plan is the gap, and the executor writes it.

Events, start-up, the periodic resync, the agent check and `registrator --resync` all come
through `Reconciler`; nothing else registers or deregisters. Changes named by events reconcile
only their containers; a full pass also removes owned services that nothing desires any more.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Collection
from functools import partial
from typing import TypeVar

from loguru import logger

from registrator.core.errors import DockerError, RegistryDenied
from registrator.core.model import ContainerID, Service, ServiceID
from registrator.core.plan import Deregister, Plan, plan
from registrator.core.policy import Policy
from registrator.core.ports import ContainerSource, Registry
from registrator.runtime.executor import Executor, Outcome
from registrator.runtime.known import KnownContainers
from registrator.runtime.node_watch import NodeWatch
from registrator.runtime.observer import NULL_OBSERVER, Observer
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.work import Changes, FullPass

_T = TypeVar("_T")


class Reconciler:
    """Plans from the known containers against the registry, and executes the plan."""

    def __init__(
        self,
        docker: ContainerSource,
        registry: Registry,
        policy: Policy,
        *,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._docker = docker
        self._registry = registry
        self._retry = retry or RetryPolicy()
        self._stop = stop
        self._observer = observer
        self.known = KnownContainers(policy, observer=observer)
        self._executor = Executor(
            registry, call=self._call, origin=self.known.origin, observer=observer
        )
        self._address_known = bool(policy.host_ip)
        self._inspected = 0
        #: the registry nodes seen by full passes: deregistrations stop once it changes
        self.nodes = NodeWatch(observer=observer)

    def changes(self, changes: Changes) -> Outcome:
        """Reconcile the containers events named: only their services are read and written.

        An updated Swarm service names its tasks on this node; one with none here costs nothing.
        """
        self._inspected = 0
        ids = changes.containers | self.known.tasks_of(changes.services)
        if not ids:
            return Outcome(Plan())
        changes = dataclasses.replace(changes, containers=ids)
        self._lookup_address(full=False)
        scope = self.known.service_ids(ids)
        self._read_changed(changes)
        scope |= self.known.service_ids(ids)
        compares = self.known.keeps_any(ids) or bool(scope & self.known.desired().keys())
        actual = self._owned(scope, with_checks=compares)
        return self._execute(self._plan(actual, scope=scope), actual)

    def full(self, full: FullPass | None = None) -> Outcome:
        """Reconcile everything this registrator owns (see `FullPass`)."""
        full = full or FullPass()
        self._inspected = 0
        self._lookup_address(full=full.docker)
        self._watch_node()
        if full.docker:
            self._read_all(reinspect=full.reinspect)
        actual = self._owned()
        outcome = self._execute(self._plan(actual, refresh=full.refresh), actual)
        self._observer.owned(len(actual) + outcome.registered - outcome.deregistered)
        return outcome

    def preview(self) -> Plan:
        """The plan of a full reconcile, without writing anything (`--resync --dry-run`)."""
        self._lookup_address(full=True)
        self._read_all(reinspect=False)
        return self._plan(self._owned())

    def release(self) -> Outcome:
        """Deregister every service this registrator owns (on exit, when asked to)."""
        actual = self._owned()
        return self._execute(plan({}, actual, stored=self._registry.stored), actual)

    def report_denied(self, error: RegistryDenied) -> None:
        self._executor.report_denied(error)

    def drain_deadline(self) -> float | None:
        return self.known.drain_deadline()

    def lift_drains(self, now: float) -> list[ContainerID]:
        """Lift the drains past their deadline; their containers are to be reconciled."""
        return self.known.lift_drains(now)

    def _plan(
        self,
        actual: dict[ServiceID, Service],
        *,
        scope: Collection[ServiceID] | None = None,
        refresh: bool = False,
    ) -> Plan:
        return plan(
            self._executor.substitute(self.known.desired()),
            actual,
            scope=scope,
            adopt=self.known.adopt(),
            refresh=refresh,
            stored=self._registry.stored,
        )

    def _execute(self, todo: Plan, actual: dict[ServiceID, Service]) -> Outcome:
        if self.nodes.changed:  # never remove on the basis of another node's list
            kept = tuple(a for a in todo.actions if not isinstance(a, Deregister))
            todo = dataclasses.replace(todo, actions=kept)
        done, errors = self._executor.apply(todo)
        return Outcome(todo, done=done, errors=tuple(errors), inspected=self._inspected)

    def _owned(
        self, ids: Collection[ServiceID] | None = None, *, with_checks: bool = True
    ) -> dict[ServiceID, Service]:
        """What the registry holds of ours: everything, or only `ids` (an event's scope)."""
        read = partial(
            self._registry.services,
            owner=self.known.policy.hostname,
            ids=ids,
            with_checks=with_checks,
        )
        return self._call("registry.services", read)

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        return self._retry.call(what, fn, stop=self._stop)

    def _watch_node(self) -> None:
        """Which node answers, asked twice in a row: one agent gives one answer, a balancer
        that spreads requests over several gives two (see `NodeWatch`). A token without agent
        read cannot tell: nothing is compared then."""
        try:
            for _ in range(2):
                self.nodes.saw(self._call("registry.node", self._registry.node))
        except RegistryDenied:
            return

    def _lookup_address(self, *, full: bool) -> None:
        """The registry's address for this host (where published ports are registered)."""
        policy = self.known.policy
        if policy.host_ip or (self._address_known and not full):
            return
        address = self._call("registry.address", self._registry.advertise_address)
        self._address_known = True
        if address != policy.advertise_address:
            self.known.redecide(dataclasses.replace(policy, advertise_address=address))

    def _read_all(self, *, reinspect: bool) -> None:
        summaries = self._call("docker.containers", self._docker.containers)
        self.known.keep_only(summaries)
        for done, summary in enumerate(summaries, 1):
            if reinspect or not self.known.seen(summary):
                self._read(summary.id)
            self._observer.progress("inspect", done=done, total=len(summaries))

    def _read_changed(self, changes: Changes) -> None:
        for container in changes.containers:
            code = changes.exited.get(container)
            if code is not None and self.known.exited(container, code):
                continue
            signals = changes.signalled.get(container, frozenset())
            if container in changes.signal_only and self.known.signalled(container, signals):
                continue
            if container in changes.network_only and not self.known.runs(container):
                continue
            self._read(container)
            if signals:
                self.known.signalled(container, signals)

    def _read(self, container_id: ContainerID) -> None:
        self._inspected += 1
        try:
            container = self._call("docker.inspect", lambda: self._docker.inspect(container_id))
        except DockerError as e:
            logger.warning("docker.inspect_failed", container=container_id[:12], error=str(e))
            self._observer.failed("docker.inspect_failed")
            return
        if container is None:
            self.known.forget(container_id)
        else:
            self.known.learn(container)
