"""The one reconcile path: Docker says what should be registered, the registry what is; the
plan is the gap, and the executor writes it.

Events, start-up, the periodic resync, the agent check and `registrator --resync` all come
through `Reconciler`; nothing else registers or deregisters. Changes named by events reconcile
only their containers; a full pass also removes owned services that nothing desires any more.

What the registry holds is kept in memory (`Mirror`): an event's reconcile plans against it
and reads nothing from the registry. Reconciles of different containers run at the same time,
each planning and writing under the locks of its services (two containers can claim one
service ID: a container recreated under its name). A full pass reads beside them (`read`),
then decides and writes with the lanes held (`Lanes.held`), read again if a lane ran
meanwhile: so what it read stays true until it has written, and it needs no lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from registrator.core.errors import RegistryDenied
from registrator.core.model import ContainerID, ContainerSummary, Service, ServiceID
from registrator.core.plan import Action, Deregister, Plan, plan
from registrator.core.ports import Registry
from registrator.runtime.executor import Applied, Executor, Outcome
from registrator.runtime.known import KnownContainers
from registrator.runtime.mirror import Mirror
from registrator.runtime.node_watch import NodeWatch
from registrator.runtime.observer import NULL_OBSERVER, Observer
from registrator.runtime.reading import DockerReader, Parallel
from registrator.runtime.retry import Retrying
from registrator.runtime.work import Changes, FullPass

#: (desired, actual, scope) -> desired with the statuses of the checks registrator runs itself
Statuses = Callable[
    [dict[ServiceID, Service], Mapping[ServiceID, Service], Collection[ServiceID] | None],
    dict[ServiceID, Service],
]
#: Docker inspects and registry writes a full pass has in flight at once: they wait on other
#: processes (dockerd, the agent), so a few overlap well even on two cores.
PARALLEL_CALLS = 4


@dataclass(frozen=True, slots=True)
class Parts:
    """The reconcile path's parts, in the order a reconcile goes through them: each built
    once by `startup.reconciler_for`, none of them calling back into the reconciler."""

    read: DockerReader
    known: KnownContainers
    mirror: Mirror
    execute: Executor
    registry: Registry
    nodes: NodeWatch
    call: Retrying
    parallel: Parallel
    observer: Observer = NULL_OBSERVER
    #: catalog mode: the statuses registrator probed, put into what is desired
    statuses: Statuses | None = None


@dataclass(frozen=True, slots=True)
class FullRead:
    """What a full pass reads of Docker and the registry before it changes anything: the
    daemon reads it while the lanes run and decides with them held (`Daemon._full`)."""

    full: FullPass
    #: the registry's address for this host, when it was asked
    address: str | None
    #: the registry nodes that answered (see `NodeWatch`)
    nodes: tuple[str, ...]
    #: Docker's list, for a pass that reads Docker
    summaries: list[ContainerSummary] | None
    owned: dict[ServiceID, Service]


class Reconciler:
    """Reads, decides, plans against the registry's held view, executes and records."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._reader, self._executor = parts.read, parts.execute
        self._registry, self._observer, self._statuses = (
            parts.registry,
            parts.observer,
            parts.statuses,
        )
        self.known, self.mirror, self.nodes = parts.known, parts.mirror, parts.nodes
        self._call, self._parallel = parts.call, parts.parallel
        self._address_known = bool(parts.known.policy.host_ip)

    def changes(self, changes: Changes) -> Outcome:
        """Reconcile the containers events named: only their services are planned and written.

        Nothing is read from the registry once the mirror holds it: an inspect (none for a
        `die` or a stop signal), then the writes. An updated Swarm service names its tasks on
        this node; one with none here costs nothing.
        """
        ids = changes.containers | self.known.tasks_of(changes.services)
        if not ids:
            return Outcome(Plan())
        changes = dataclasses.replace(changes, containers=ids)
        self._lookup_address(full=False)
        scope = self.known.service_ids(ids)
        inspected = self._reader.read_changed(changes)
        scope |= self.known.service_ids(ids)
        with self.mirror.holding(scope):
            actual = self._actual(scope, ids)
            outcome = self._execute(self._plan(actual, scope=scope), inspected=inspected)
        if self.mirror.loaded and not outcome.plan.empty:
            self._observer.owned(len(self.mirror))
        return outcome

    def read(self, full: FullPass) -> FullRead:
        """What a full pass reads before it changes anything (see `FullRead`)."""
        address = None
        if not self.known.policy.host_ip and (full.docker or not self._address_known):
            address = self._call("registry.address", self._registry.advertise_address)
        summaries = self._reader.listed() if full.docker else None
        return FullRead(full, address, self._ask_node(), summaries, self._owned())

    def full(self, full: FullPass | None = None, read: FullRead | None = None) -> Outcome:
        """Reconcile everything this registrator owns (see `FullPass`), from `read` if given
        (read since the last change of any container's state), else from a read made now."""
        full = full or FullPass.RESYNC
        read = read if read is not None and read.full == full else self.read(full)
        if read.address is not None:
            self._learn_address(read.address)
        for node in read.nodes:
            self.nodes.saw(node)
        inspected = 0
        if read.summaries is not None:
            inspected = self._reader.learn_all(read.summaries, reinspect=full.reinspect)
        self.mirror.load(read.owned)
        todo = self._guard(self._plan(self.mirror.view(), refresh=full.refresh))
        outcome = self._execute_each(todo, inspected=inspected)
        self._observer.owned(len(self.mirror))
        return outcome

    def preview(self) -> Plan:
        """The plan of a full reconcile, without writing anything (`--resync --dry-run`)."""
        self._lookup_address(full=True)
        self._reader.read_all(reinspect=False)
        return self._plan(self._owned())

    def release(self) -> Outcome:
        """Deregister every service this registrator owns (on exit, when asked to)."""
        actual = self._owned()
        return self._execute(plan({}, actual, stored=self._registry.stored), inspected=0)

    def report_denied(self, error: RegistryDenied) -> None:
        self._executor.report_denied(error)

    def may_drain(self, container: ContainerID, signal: int | None) -> bool:
        """Whether a `kill` event can change anything (see `KnownContainers.may_drain`)."""
        return self.known.may_drain(container, signal)

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
        desired = self.known.desired(scope)
        if self._statuses is not None:
            desired = self._statuses(desired, actual, scope)
        return plan(
            self._executor.substitute(desired),
            actual,
            scope=scope,
            adopt=self.known.adopt(),
            refresh=refresh,
            stored=self._registry.stored,
        )

    def _guard(self, todo: Plan) -> Plan:
        """Never remove on the basis of another node's list (see `NodeWatch`)."""
        if not self.nodes.changed:
            return todo
        kept = tuple(a for a in todo.actions if not isinstance(a, Deregister))
        return dataclasses.replace(todo, actions=kept)

    def _execute(self, todo: Plan, *, inspected: int) -> Outcome:
        todo = self._guard(todo)
        applied = self._apply(todo, True)
        return Outcome(todo, applied.done, tuple(applied.errors), inspected=inspected)

    def _apply(self, todo: Plan, progress: bool) -> Applied:
        """Execute, then record in the mirror what the registry carried out."""
        origins = self.known.origins({a.service_id for a in todo.actions})
        applied = self._executor.apply(todo, origins=origins, progress=progress)
        for action in applied.carried_out:
            self.mirror.record(action)
        return applied

    def _execute_each(self, todo: Plan, *, inspected: int) -> Outcome:
        """A full pass's plan, the services a few at a time (`PARALLEL_CALLS`): each service's
        actions in order, on one thread."""
        by_service: dict[ServiceID, list[Action]] = {}
        for action in todo.actions:
            by_service.setdefault(action.service_id, []).append(action)
        plans = [dataclasses.replace(todo, actions=tuple(a)) for a in by_service.values()]
        done: dict[str, int] = {}
        errors: list[str] = []
        for number, applied in enumerate(self._parallel.each(self._apply, plans, False), 1):
            for kind, count in applied.done.items():
                done[kind] = done.get(kind, 0) + count
            errors += applied.errors
            self._observer.progress("write", done=number, total=len(plans))
        return Outcome(todo, done=done, errors=tuple(errors), inspected=inspected)

    def _actual(
        self, scope: set[ServiceID], containers: Collection[ContainerID]
    ) -> dict[ServiceID, Service]:
        """What the registry holds of `scope`: from the mirror, or read before it is loaded."""
        if self.mirror.loaded:
            return self.mirror.view(scope)
        compares = self.known.keeps_any(containers) or bool(scope & self.known.desired().keys())
        return self._owned(scope, with_checks=compares)

    def _owned(
        self, ids: Collection[ServiceID] | None = None, *, with_checks: bool = True
    ) -> dict[ServiceID, Service]:
        """What the registry holds of ours: everything, or only `ids` (an event's scope)."""
        owner = self.known.policy.hostname
        read = lambda: self._registry.services(owner=owner, ids=ids, with_checks=with_checks)  # noqa: E731
        return self._call("registry.services", read)

    def _ask_node(self) -> tuple[str, ...]:
        """Which node answers, asked twice in a row: one agent gives one answer, a balancer
        that spreads requests over several gives two (see `NodeWatch`). A token without agent
        read cannot tell: nothing is compared then."""
        try:
            return tuple(self._call("registry.node", self._registry.node) for _ in range(2))
        except RegistryDenied:
            return ()

    def _lookup_address(self, *, full: bool) -> None:
        """The registry's address for this host (where published ports are registered)."""
        if self.known.policy.host_ip or (self._address_known and not full):
            return
        self._learn_address(self._call("registry.address", self._registry.advertise_address))

    def _learn_address(self, address: str) -> None:
        self._address_known = True
        policy = self.known.policy
        if address != policy.advertise_address:
            self.known.redecide(dataclasses.replace(policy, advertise_address=address))
