"""The dead-host decision: which nodes are dead, who reaps them, and when (a fake clock: `now`)."""

from __future__ import annotations

import pytest

from registrator.core.dead_hosts import (
    Claim,
    DropClaim,
    Lock,
    MarkDead,
    Reap,
    Reaping,
    TakeClaim,
    Tree,
    decide,
    next_due,
)

ME = Reaping(node="host-1", session="s1", reap_after=300)
T0 = 1_000_000.0


def tree(*items: Lock | Claim) -> Tree:
    locks = {i.node: i for i in items if isinstance(i, Lock)}
    claims = {i.node: i for i in items if isinstance(i, Claim)}
    return Tree(locks, claims)


def test_live_nodes_need_nothing() -> None:
    """Every lock held, no claim: nothing to do."""
    assert decide(tree(Lock("host-1", True, 5), Lock("host-2", True, 6)), ME, now=T0) == []


def test_a_released_lock_is_claimed_from_now() -> None:
    """A node whose session ran out (its key has no holder) is claimed, its clock starting now."""
    assert decide(tree(Lock("host-2", False, 9)), ME, now=T0) == [TakeClaim("host-2", 9, T0)]


def test_own_node_is_never_judged() -> None:
    """This registrator's own lock, released or not, and a claim on it, are not its to act on."""
    own = tree(Lock("host-1", False, 9), Claim("host-1", "s2", 9, T0))
    assert decide(own, ME, now=T0 + 10_000) == []


def test_without_a_session_nothing_is_claimed() -> None:
    """Until its own session exists a registrator claims nothing (it could not hold a claim)."""
    waiting = Reaping(node="host-1", session="", reap_after=300)
    assert decide(tree(Lock("host-2", False, 9)), waiting, now=T0) == []


def test_a_claim_held_by_another_is_left_to_it() -> None:
    """Exactly one reaper: a claim another live session holds means this one does nothing."""
    other = tree(Lock("host-2", False, 9), Claim("host-2", "s3", 9, T0))
    assert decide(other, ME, now=T0 + 10_000) == []
    assert next_due(other, ME) is None


def test_the_claimant_marks_once_then_reaps_when_due() -> None:
    """Holding the claim: mark the node dead at once (once), and reap it reap_after later."""
    mine = tree(Lock("host-2", False, 9), Claim("host-2", "s1", 9, T0))
    assert decide(mine, ME, now=T0) == [MarkDead("host-2", 9)]
    assert decide(mine, ME, now=T0 + 299, marked={("host-2", 9)}) == []
    assert next_due(mine, ME) == T0 + 300
    assert decide(mine, ME, now=T0 + 300, marked={("host-2", 9)}) == [Reap("host-2", 9)]


def test_reap_after_zero_marks_but_never_reaps() -> None:
    """--reap-after 0: dead nodes are marked critical and stay so; nothing falls due."""
    never = Reaping(node="host-1", session="s1", reap_after=0)
    mine = tree(Lock("host-2", False, 9), Claim("host-2", "s1", 9, T0))
    assert decide(mine, never, now=T0 + 10**9) == [MarkDead("host-2", 9)]
    assert decide(mine, never, now=T0 + 10**9, marked={("host-2", 9)}) == []
    assert next_due(mine, never) is None


def test_a_claim_whose_holder_died_keeps_its_deadline() -> None:
    """The reaper died before the reap: the next claimant keeps the time the node was marked."""
    orphan = tree(Lock("host-2", False, 9), Claim("host-2", "", 9, T0))
    assert decide(orphan, ME, now=T0 + 200) == [TakeClaim("host-2", 9, T0)]


def test_the_last_registrator_back_reaps_what_has_long_been_dead() -> None:
    """The whole fleet was down: the first one back takes over the old claim and, as the node
    was marked longer than reap_after ago, reaps it as soon as it holds the claim."""
    old = tree(Lock("host-2", False, 9), Claim("host-2", "", 9, T0))
    assert decide(old, ME, now=T0 + 5000) == [TakeClaim("host-2", 9, T0)]
    held = tree(Lock("host-2", False, 9), Claim("host-2", "s1", 9, T0))
    assert decide(held, ME, now=T0 + 5000) == [MarkDead("host-2", 9), Reap("host-2", 9)]


def test_a_claim_about_an_earlier_death_starts_again() -> None:
    """The node came back and died again: an old claim's time is not this death's."""
    orphan = tree(Lock("host-2", False, 14), Claim("host-2", "", 9, T0))
    assert decide(orphan, ME, now=T0 + 900) == [TakeClaim("host-2", 14, T0 + 900)]
    mine = tree(Lock("host-2", False, 14), Claim("host-2", "s1", 9, T0))
    assert decide(mine, ME, now=T0 + 900) == [TakeClaim("host-2", 14, T0 + 900)]


@pytest.mark.parametrize(("holder", "dropped"), [("s1", True), ("", True), ("s3", False)])
def test_a_node_back_before_the_reap_ends_the_claim(holder: str, dropped: bool) -> None:
    """Its registrator re-acquired the lock: our claim (or an orphaned one) is deleted; another
    live registrator's claim is its own to delete."""
    back = tree(Lock("host-2", True, 12), Claim("host-2", holder, 9, T0, index=10))
    assert decide(back, ME, now=T0 + 100) == ([DropClaim("host-2", 10)] if dropped else [])
    assert next_due(back, ME) is None


def test_a_claim_on_a_node_without_lock_is_dropped() -> None:
    """Reaped (its lock deleted with it) or removed by hand: the claim left over goes."""
    leftover = tree(Claim("host-2", "s1", 9, T0, index=11))
    assert decide(leftover, ME, now=T0) == [DropClaim("host-2", 11)]


def test_several_dead_nodes_each_on_their_own_clock() -> None:
    """Deadlines per node: the earliest is what the watch waits for."""
    several = tree(
        Lock("host-2", False, 9),
        Claim("host-2", "s1", 9, T0 + 50),
        Lock("host-3", False, 7),
        Claim("host-3", "s1", 7, T0),
        Lock("host-4", True, 3),
    )
    marked = {("host-2", 9), ("host-3", 7)}
    assert next_due(several, ME) == T0 + 300
    assert decide(several, ME, now=T0 + 320, marked=marked) == [Reap("host-3", 7)]
    assert decide(several, ME, now=T0 + 350, marked=marked) == [
        Reap("host-2", 9),
        Reap("host-3", 7),
    ]
