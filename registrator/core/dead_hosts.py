"""Dead hosts in catalog mode: which nodes lost their registrator, who reaps them, and when.

With no Consul agent on a host, nothing notices that the host died (there is no serf): its
services would stay passing for ever. So every registrator in catalog mode holds a lock key
for its node (`nodes/<node>`) with a Consul session whose TTL it renews, and watches every
other node's lock. When a session's TTL runs out, Consul releases its lock: the key stays,
with no holder. One live registrator, the one that acquires the claim key `reap/<node>`,
marks that node dead (a critical node check, which fails every service on it at once) and,
`reap_after` seconds after it was first marked, deregisters the node. The claim records the
death it is about (the lock's index) and when the node was marked, so a claim that passes
to another registrator (its holder died too) keeps the original deadline.

This module is the decision only: the keys' state and the time in, the actions out. It
never reads a clock: the caller passes `now` (wall-clock seconds, as stored in claims).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Lock:
    """A node's lock key: held while its registrator's session lives."""

    node: str
    held: bool
    #: the key's ModifyIndex: a release and a re-acquisition each change it
    index: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim key `reap/<node>`: who reaps that node, for which death, since when."""

    node: str
    #: the session holding the claim, "" once released (its holder died too)
    holder: str
    #: the node lock's index at the death this claim is about
    dead_index: int
    #: when the node was first marked dead (seconds since the epoch)
    since: float
    #: the claim key's own ModifyIndex
    index: int = 0


@dataclass(frozen=True, slots=True)
class Tree:
    """The liveness keys as one read of the prefix found them."""

    locks: Mapping[str, Lock]
    claims: Mapping[str, Claim]


@dataclass(frozen=True, slots=True)
class Watched:
    """One answer of the watch: Consul's index, the keys, and the keys that made no sense."""

    index: int
    tree: Tree
    bad: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TakeClaim:
    """Acquire the claim on `node` (it may be lost to another registrator)."""

    node: str
    dead_index: int
    since: float


@dataclass(frozen=True, slots=True)
class MarkDead:
    """Write the node's liveness check critical, unless its lock changed since `index`."""

    node: str
    index: int


@dataclass(frozen=True, slots=True)
class Reap:
    """Deregister the node, unless its lock changed since `index`."""

    node: str
    index: int


@dataclass(frozen=True, slots=True)
class DropClaim:
    """Delete a claim that is no longer needed: its node is back, or gone."""

    node: str
    index: int


Action = TakeClaim | MarkDead | Reap | DropClaim


@dataclass(frozen=True, slots=True)
class Reaping:
    """Who this registrator is in the fleet's liveness keys, and the delay before a reap."""

    #: this registrator's own node: never judged here (it holds or takes its own lock)
    node: str
    #: this registrator's session ("" while it has none: then it claims nothing)
    session: str
    #: seconds from marked dead to deregistered; 0 = never deregister
    reap_after: float


def decide(
    tree: Tree, reaping: Reaping, *, now: float, marked: Set[tuple[str, int]] = frozenset()
) -> list[Action]:
    """What to do about every other node; `marked` holds the (node, lock index) pairs this
    registrator has already marked dead."""
    actions: list[Action] = []
    for node in sorted({*tree.locks, *tree.claims} - {reaping.node}):
        actions.extend(_about(tree.locks.get(node), tree.claims.get(node), reaping, now, marked))
    return actions


def _about(
    lock: Lock | None,
    claim: Claim | None,
    reaping: Reaping,
    now: float,
    marked: Set[tuple[str, int]],
) -> list[Action]:
    ours_to_drop = claim is not None and claim.holder in {"", reaping.session}
    if lock is None or lock.held:  # gone (reaped, or by hand), or back: the claim has done
        return [DropClaim(claim.node, claim.index)] if claim is not None and ours_to_drop else []
    if not reaping.session:
        return []
    if claim is None or not claim.holder:
        same_death = claim is not None and claim.dead_index == lock.index
        since = claim.since if claim is not None and same_death else now
        return [TakeClaim(lock.node, lock.index, since)]
    if claim.holder != reaping.session:
        return []  # another registrator reaps it
    if claim.dead_index != lock.index:  # back and dead again since the claim was taken
        return [TakeClaim(lock.node, lock.index, now)]
    actions: list[Action] = []
    if (lock.node, lock.index) not in marked:
        actions.append(MarkDead(lock.node, lock.index))
    if reaping.reap_after > 0 and now >= claim.since + reaping.reap_after:
        actions.append(Reap(lock.node, lock.index))
    return actions


def next_due(tree: Tree, reaping: Reaping) -> float | None:
    """When the earliest reap this registrator has claimed falls due (epoch seconds)."""
    if reaping.reap_after <= 0 or not reaping.session:
        return None
    due = [
        claim.since + reaping.reap_after
        for node, claim in tree.claims.items()
        if claim.holder == reaping.session
        and node in tree.locks
        and not tree.locks[node].held
        and node != reaping.node
    ]
    return min(due, default=None)
