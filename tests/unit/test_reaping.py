"""The reaper loop over a fake liveness store with a fake clock: one step at a time, it claims,
marks, reaps when due, reports lost claims, bad keys and 403s once. (test_liveness.py runs the
real adapter against a real Consul agent.)"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from loguru import logger

from registrator.core.dead_hosts import Claim, Lock, Tree, Watched
from registrator.core.errors import RegistryDenied
from registrator.registries.catalog.liveness_keys import parse_tree
from registrator.runtime.reaping import NO_SESSION_WAIT, Reaper
from registrator.runtime.retry import RetryPolicy


@dataclass
class FakeLiveness:
    """The keys as a dict, claims won unless another session holds them; writes recorded."""

    session: str = "s1"
    locks: dict[str, Lock] = field(default_factory=dict)
    claims: dict[str, Claim] = field(default_factory=dict)
    writes: list[tuple[str, str]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    fail: Exception | None = None

    def watch(self, index: int, wait: float) -> Watched:
        self.waits.append(wait)
        self.indexes.append(index)
        if self.fail is not None:
            raise self.fail
        return Watched(index + 1, Tree(dict(self.locks), dict(self.claims)))

    def claim(self, node: str, *, dead_index: int, since: float) -> bool:
        held = self.claims.get(node)
        if held is not None and held.holder not in {"", self.session}:
            return False
        self.claims[node] = Claim(node, self.session, dead_index, since, 50)
        self.writes.append(("claim", node))
        return True

    def mark_dead(self, node: str, index: int) -> str:
        self.writes.append(("mark", node))
        return "marked"

    def reap(self, node: str, index: int) -> tuple[str, int]:
        self.writes.append(("reap", node))
        self.locks.pop(node)
        self.claims.pop(node)
        return "reaped", 2

    def drop_claim(self, node: str, index: int) -> None:
        self.writes.append(("drop", node))
        self.claims.pop(node)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged() -> Iterator[list[str]]:
    found: list[str] = []
    sink = logger.add(lambda m: found.append(m.record["message"]), level="INFO")
    yield found
    logger.remove(sink)


def reaper(fake: FakeLiveness, clock: Clock, stop: threading.Event | None = None) -> Reaper:
    return Reaper(
        fake,
        node="host-1",
        reap_after=300,
        stop=stop or threading.Event(),
        clock=clock,
        retry=RetryPolicy.without_waits(),
    )


def test_a_dead_node_is_claimed_marked_and_reaped_when_due(logged: list[str]) -> None:
    """Step by step: claim, mark (logged once), wait for the deadline, reap (logged)."""
    fake, clock = FakeLiveness(locks={"host-2": Lock("host-2", False, 9)}), Clock()
    loop = reaper(fake, clock)
    loop.step()
    loop.step()
    loop.step()
    assert fake.writes == [("claim", "host-2"), ("mark", "host-2")]
    assert fake.waits[-1] == 300  # it wakes when the reap falls due
    clock.now += 299
    loop.step()
    assert fake.waits[-1] == 1
    clock.now += 1
    loop.step()
    assert fake.writes[-1] == ("reap", "host-2")
    assert logged.count("catalog.node_dead") == 1
    assert logged.count("catalog.node_reaped") == 1


def test_a_claim_another_holds_is_left_alone(logged: list[str]) -> None:
    """Another live registrator reaps it: nothing is tried, nothing written."""
    fake = FakeLiveness(
        locks={"host-2": Lock("host-2", False, 9)},
        claims={"host-2": Claim("host-2", "s3", 9, 0.0)},
    )
    loop = reaper(fake, Clock())
    for _ in range(3):
        loop.step()
    assert fake.writes == []
    assert logged.count("catalog.reap_lost") == 0  # never tried: another holds it


def test_a_race_for_a_claim_lost_is_logged_once(logged: list[str]) -> None:
    """Released when read, taken by another before our acquire: `catalog.reap_lost`, once."""
    fake = FakeLiveness(locks={"host-2": Lock("host-2", False, 9)})
    fake.claim = lambda node, **_: False  # type: ignore[method-assign]
    loop = reaper(fake, Clock())
    for _ in range(3):
        loop.step()
    assert logged.count("catalog.reap_lost") == 1


def test_a_node_back_has_its_claim_dropped(logged: list[str]) -> None:
    """Its lock is held again: the claim goes, `catalog.node_back` says so."""
    fake = FakeLiveness(
        locks={"host-2": Lock("host-2", True, 12)},
        claims={"host-2": Claim("host-2", "s1", 9, 0.0, 10)},
    )
    reaper(fake, Clock()).step()
    assert fake.writes == [("drop", "host-2")]
    assert "catalog.node_back" in logged


def test_bad_keys_are_reported_once_each(logged: list[str]) -> None:
    """Keys under the prefix that are no lock or claim: skipped, one line each, once."""
    raw: list[dict[str, Any]] = [
        {"Key": "p/nodes/host-2", "ModifyIndex": 5, "Session": "s2"},
        {"Key": "p/reap/host-3", "ModifyIndex": 6, "Value": b64("not json")},
        {"Key": "p/other/thing", "ModifyIndex": 7, "Value": b64("x")},
        {"Key": "p/reap/host-4", "ModifyIndex": 8, "Value": b64(json.dumps({"since": 1}))},
    ]
    tree, bad = parse_tree("p", raw)
    assert tree.locks == {"host-2": Lock("host-2", True, 5)}
    assert tree.claims == {}
    assert [key for key, _ in bad] == ["p/reap/host-3", "p/other/thing", "p/reap/host-4"]

    class Bad(FakeLiveness):
        def watch(self, index: int, wait: float) -> Watched:
            return Watched(index + 1, tree, bad)

    loop = reaper(Bad(), Clock())
    loop.step()
    loop.step()
    assert logged.count("catalog.bad_key") == 3


def test_a_403_is_one_error_line_and_the_loop_goes_on(logged: list[str]) -> None:
    """A token without the permissions: one `catalog.liveness_denied`, retried quietly."""
    stop = threading.Event()
    fake = FakeLiveness(fail=RegistryDenied("GET /v1/kv/registrator/catalog/: 403"))
    original = fake.watch

    def watch(index: int, wait: float) -> Watched:
        if len(fake.waits) >= 5:
            stop.set()
        return original(index, wait)

    fake.watch = watch  # type: ignore[method-assign]
    reaper(fake, Clock(), stop).run()
    assert len(fake.waits) >= 5
    assert logged.count("catalog.liveness_denied") == 1


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_session_taken_without_any_key_changing_is_used_at_once() -> None:
    """A restart adopts its live session: no key changes, so no blocking query would wake.
    Without a session the reaper only waits briefly, and reads again at once when it has one."""
    fake = FakeLiveness(session="", locks={"host-2": Lock("host-2", False, 9)})
    loop = reaper(fake, Clock())
    loop.step()
    loop.step()
    assert fake.writes == []
    assert fake.waits[-1] == NO_SESSION_WAIT
    fake.session = "s1"
    loop.step()
    assert fake.indexes[-1] == 0
    assert fake.writes == [("claim", "host-2")]


def test_a_dead_node_already_gone_is_not_marked_again_at_every_wake() -> None:
    """Its lock left behind by a node removed by hand: one look, then only the reap, when due,
    which deletes the keys."""
    fake = FakeLiveness(locks={"host-2": Lock("host-2", False, 9)})

    def gone(node: str, index: int) -> str:
        fake.writes.append(("mark", node))
        return "gone"

    fake.mark_dead = gone  # type: ignore[method-assign]
    loop = reaper(fake, Clock())
    for _ in range(4):
        loop.step()
    assert fake.writes == [("claim", "host-2"), ("mark", "host-2")]
