"""Where the reconcile path is built: every part once, bottom up, each handed what it calls.

Nothing is wired back up: the reader teaches the known containers, the plan is made against
the mirror, the executor returns what the registry carried out and the reconciler records it.
The daemon's threads are named in one place too (`Daemon.threads`).
"""

from __future__ import annotations

import threading

from registrator.core.policy import Policy
from registrator.core.ports import ContainerSource, Registry
from registrator.runtime.executor import Executor
from registrator.runtime.known import KnownContainers
from registrator.runtime.mirror import Mirror
from registrator.runtime.node_watch import NodeWatch
from registrator.runtime.observer import NULL_OBSERVER, Observer
from registrator.runtime.reading import DockerReader, Parallel
from registrator.runtime.reconciler import PARALLEL_CALLS, Parts, Reconciler, Statuses
from registrator.runtime.retry import Retrying, RetryPolicy


def reconciler_for(
    docker: ContainerSource,
    registry: Registry,
    policy: Policy,
    *,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
    observer: Observer = NULL_OBSERVER,
    statuses: Statuses | None = None,
) -> Reconciler:
    """The reconciler of `docker` into `registry` under `policy`, with all its parts."""
    call = Retrying(retry or RetryPolicy(), stop)
    known = KnownContainers(policy, observer=observer)
    parallel = Parallel(PARALLEL_CALLS, name="reconcile")
    read = DockerReader(docker, known, call=call, parallel=parallel, observer=observer)
    parts = Parts(
        read=read,
        known=known,
        mirror=Mirror(registry.applied),
        execute=Executor(registry, call=call, observer=observer),
        registry=registry,
        nodes=NodeWatch(observer=observer),
        call=call,
        parallel=parallel,
        observer=observer,
        statuses=statuses,
    )
    return Reconciler(parts)
