"""The reaper: in catalog mode, every registrator watches the fleet's liveness keys and acts on
what `core.dead_hosts.decide` says about the other nodes.

One thread of its own, one blocking query at a time on the key prefix (`?index=`): it wakes
when a lock is released or taken, a claim changes, or the earliest reap it has claimed falls
due, and otherwise costs one idle request per `WATCH_WAIT`. Its own writes change the index,
so the next query answers at once and the next step sees their result: a claim taken is
followed by the mark, a mark by the reap when due. The session and the node's own lock are
the heartbeat's (`runtime/heartbeat.py`, with `Liveness.heartbeat`); this loop only reads the
session. A failed step is tried again with backoff, its error logged once until a step works.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from loguru import logger

from registrator.core.dead_hosts import (
    Action,
    DropClaim,
    MarkDead,
    Reap,
    Reaping,
    TakeClaim,
    Tree,
    Watched,
    decide,
    next_due,
)
from registrator.core.errors import BackendError, RegistryDenied
from registrator.runtime.retry import RetryPolicy

#: the longest a blocking query waits for a change (Consul's own default is 5 min)
WATCH_WAIT = 300.0
#: how long it waits while this registrator has no session yet: taking one need not change
#: a key (a restart adopts its live session), and until then it may claim nothing
NO_SESSION_WAIT = 2.0
DENIED_HINT = "the token needs the rules for dead hosts in catalog mode (README, ACL)"


class Liveness(Protocol):
    """What the reaper asks of the liveness adapter (`registries/catalog/liveness.py`)."""

    @property
    def session(self) -> str: ...
    def watch(self, index: int, wait: float) -> Watched: ...
    def claim(self, node: str, *, dead_index: int, since: float) -> bool: ...
    def mark_dead(self, node: str, index: int) -> str: ...
    def reap(self, node: str, index: int) -> tuple[str, int]: ...
    def drop_claim(self, node: str, index: int) -> None: ...


class Reaper:
    """Marks dead nodes critical and reaps them, once across the fleet (see `dead_hosts`)."""

    def __init__(
        self,
        liveness: Liveness,
        *,
        node: str,
        reap_after: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._liveness = liveness
        self._node = node
        self._reap_after = reap_after
        self._stop = stop
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._index = 0
        self._tree = Tree({}, {})
        #: the session the last decision was made with
        self._session = ""
        #: (node, lock index) pairs marked dead by this registrator
        self._marked: set[tuple[str, int]] = set()
        #: what was said once and need not be said again: lost claims, foreign nodes, bad keys
        self._said: set[tuple[str, ...]] = set()

    def run(self) -> None:
        """Step until `stop` is set; a failure waits a backoff, logged once until it works."""
        failures = 0
        while not self._stop.is_set():
            try:
                self.step()
            except BackendError as e:
                self._failed(e, again=failures > 0)
                failures += 1
                self._stop.wait(self._retry.backoff(failures))
                continue
            if failures:
                logger.info("catalog.watch_restored")
            failures = 0

    def step(self) -> None:
        """One blocking query, then whatever the answer calls for."""
        if self._liveness.session != self._session:
            self._index = 0  # decided without it: read again at once, whatever changed
        watched = self._liveness.watch(self._index, self._wait())
        self._index, self._tree = watched.index, watched.tree
        for key, value in watched.bad:
            self._once("catalog.bad_key", key, value, reason="not a liveness key registrator wrote")
        self._session = self._liveness.session
        reaping = Reaping(self._node, self._session, self._reap_after)
        for action in decide(self._tree, reaping, now=self._clock(), marked=self._marked):
            if self._stop.is_set():
                return
            self._do(action)

    def _wait(self) -> float:
        if not self._session:
            return NO_SESSION_WAIT
        reaping = Reaping(self._node, self._session, self._reap_after)
        due = next_due(self._tree, reaping)
        if due is None:
            return WATCH_WAIT
        return min(WATCH_WAIT, max(1.0, due - self._clock()))

    def _do(self, action: Action) -> None:
        if isinstance(action, TakeClaim):
            self._take(action)
        elif isinstance(action, MarkDead):
            self._mark(action)
        elif isinstance(action, Reap):
            self._reap(action)
        else:
            self._drop(action)

    def _take(self, action: TakeClaim) -> None:
        won = self._liveness.claim(action.node, dead_index=action.dead_index, since=action.since)
        if not won:
            self._once("catalog.reap_lost", action.node, str(action.dead_index))

    def _mark(self, action: MarkDead) -> None:
        result = self._liveness.mark_dead(action.node, action.index)
        if result != "changed":  # marked, or nothing to mark: the reap, when due, tidies up
            self._marked.add((action.node, action.index))
        if result == "marked":
            reap_in = round(self._reap_after) if self._reap_after > 0 else "never"
            logger.warning("catalog.node_dead", node=action.node, reap_in=reap_in)
        elif result == "foreign":
            self._foreign(action.node)
        else:
            logger.debug("catalog.mark_skipped", node=action.node, why=result)

    def _reap(self, action: Reap) -> None:
        result, services = self._liveness.reap(action.node, action.index)
        if result == "reaped":
            logger.warning("catalog.node_reaped", node=action.node, services=services)
        elif result == "foreign":
            self._foreign(action.node)
        else:
            logger.info("catalog.reap_skipped", node=action.node, why=result)

    def _drop(self, action: DropClaim) -> None:
        lock = self._tree.locks.get(action.node)
        self._liveness.drop_claim(action.node, action.index)
        if lock is not None and lock.held:
            logger.info("catalog.node_back", node=action.node)

    def _foreign(self, node: str) -> None:
        self._once(
            "catalog.node_foreign",
            node,
            reason="a node of that name without registrator's node meta: left as it is",
        )

    def _once(self, event: str, *about: str, reason: str = "") -> None:
        """Log `event` the first time it is about these things (a node, a key and value)."""
        if (event, *about) in self._said:
            return
        self._said.add((event, *about))
        names = {
            "catalog.bad_key": ("key", "value"),
            "catalog.reap_lost": ("node", "lock_index"),
            "catalog.node_foreign": ("node",),
        }[event]
        fields = dict(zip(names, about, strict=True))
        if reason:
            fields["reason"] = reason
        level = logger.info if event == "catalog.reap_lost" else logger.warning
        level(event, **fields)

    def _failed(self, error: BackendError, *, again: bool) -> None:
        if isinstance(error, RegistryDenied):
            if not again:
                logger.error("catalog.liveness_denied", error=str(error), hint=DENIED_HINT)
            return
        (logger.debug if again else logger.warning)("catalog.watch_failed", error=str(error))
