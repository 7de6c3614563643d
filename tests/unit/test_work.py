"""Folding what the worker is told into what it owes: a pure function, no threads."""

from __future__ import annotations

from functools import reduce

from registrator.core.events import ContainerEvent, Happened, ServiceUpdate
from registrator.core.model import ContainerID
from registrator.runtime.work import FullPass, Item, Pending, fold

A = ContainerID("a")


def folded(*items: Item) -> Pending:
    return reduce(fold, items, Pending())


def test_fold_leaves_what_it_is_given_as_it_was() -> None:
    before = folded(ContainerEvent(A, Happened.SIGNALLED, signal=15))

    after = fold(before, ContainerEvent(A, Happened.STARTED))

    assert (before.signalled, before.signal_only) == ({A: {15}}, {A})
    assert (after.signalled, after.signal_only) == ({}, set())


def test_full_passes_owed_twice_are_their_union() -> None:
    owed = folded(FullPass.AGENT_CHECK | FullPass.REFRESH, FullPass.RESYNC | FullPass.REINSPECT)

    assert owed.full == FullPass.RESYNC | FullPass.REINSPECT | FullPass.REFRESH
    assert (owed.full.docker, owed.full.reinspect, owed.full.refresh) == (True, True, True)
    assert FullPass.AGENT_CHECK.scope == "agent"
    assert FullPass.RESYNC.scope == "full"


def test_kills_alone_need_no_inspect_until_anything_else_comes() -> None:
    kills = folded(
        ContainerEvent(A, Happened.SIGNALLED, signal=1),
        ContainerEvent(A, Happened.SIGNALLED, signal=15),
    )

    assert kills.signalled == {A: {1, 15}}
    assert kills.signal_only == {A}
    assert fold(kills, A).signal_only == set()
    assert fold(kills, ContainerEvent(A, Happened.EXITED, exit_code=0)).signal_only == set()


def test_a_kill_after_a_start_is_not_alone() -> None:
    owed = folded(
        ContainerEvent(A, Happened.STARTED), ContainerEvent(A, Happened.SIGNALLED, signal=15)
    )

    assert owed.signal_only == set()
    assert owed.signalled == {A: {15}}


def test_a_named_container_needs_an_inspect_whatever_its_events_said() -> None:
    owed = folded(ContainerEvent(A, Happened.CONNECTED), A)

    assert owed.containers == {A}
    assert owed.network_only == set()


def test_service_updates_are_collected_apart_from_containers() -> None:
    owed = folded(ServiceUpdate("svc"), ServiceUpdate("svc"))

    assert owed.services == {"svc"}
    assert owed.containers == set()
    assert bool(owed)
    assert not Pending()
