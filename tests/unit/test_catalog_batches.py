"""Writes that arrive together go in one transaction; a refused batch is sent again one by
one, so a refusal is only its own writer's."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from harness.waits import wait_until
from registrator.core.errors import RegistryRefused, RegistryUnavailable
from registrator.registries.catalog.batch import Batches

HEAD = [{"Node": "n"}]


class Consul:
    """Records each transaction; the first one waits until released (one in flight)."""

    def __init__(self, *, refuse: str = "", down: bool = False) -> None:
        self.sent: list[list[Any]] = []
        self.release = threading.Event()
        self._refuse = refuse
        self._down = down

    def send(self, what: str, ops: list[dict[str, Any]]) -> None:
        self.sent.append([op.get("id") for op in ops])
        if len(self.sent) == 1:
            self.release.wait(10)
        if self._down:
            raise RegistryUnavailable(f"{what}: no leader")
        if self._refuse and any(op.get("id") == self._refuse for op in ops):
            raise RegistryRefused(f"{what}: refused")


def writers(batches: Batches, names: list[str]) -> tuple[list[threading.Thread], dict[str, str]]:
    results: dict[str, str] = {}

    def write(name: str) -> None:
        try:
            batches.write(name, [{"id": name}])
            results[name] = "ok"
        except RegistryRefused:
            results[name] = "refused"
        except RegistryUnavailable:
            results[name] = "unavailable"

    threads = [threading.Thread(target=write, args=(n,)) for n in names]
    return threads, results


def start_behind_a_first(consul: Consul, names: list[str]) -> dict[str, str]:
    """ "first" in flight, then `names` arriving meanwhile; every writer's result."""
    batches = Batches(consul.send, limit=64, head=lambda: list(HEAD))
    [first], results = writers(batches, ["first"])
    first.start()
    wait_until(lambda: consul.sent, what="the first transaction in flight")
    threads, more = writers(batches, names)
    for thread in threads:
        thread.start()
    wait_until(lambda: all(t.is_alive() for t in threads), what="the others waiting")
    consul.release.set()
    for thread in (first, *threads):
        thread.join(10)
    return {**results, **more}


def test_writes_arriving_while_one_is_in_flight_go_together_in_the_next() -> None:
    consul = Consul()

    results = start_behind_a_first(consul, ["a", "b", "c"])

    assert results == {"first": "ok", "a": "ok", "b": "ok", "c": "ok"}
    assert consul.sent[0] == [None, "first"]
    assert sorted(consul.sent[1][1:]) == ["a", "b", "c"]
    assert consul.sent[1][0] is None  # the node once, at the head
    assert len(consul.sent) == 2


def test_a_refused_batch_is_sent_again_one_by_one_and_only_its_writer_fails() -> None:
    consul = Consul(refuse="b")

    results = start_behind_a_first(consul, ["a", "b", "c"])

    assert results == {"first": "ok", "a": "ok", "b": "refused", "c": "ok"}
    batch, alone = consul.sent[1], consul.sent[2:]
    assert sorted(batch[1:]) == ["a", "b", "c"]
    assert sorted(ops[1:] for ops in alone) == [["a"], ["b"], ["c"]]


def test_a_registry_that_does_not_answer_fails_every_write_of_the_batch() -> None:
    consul = Consul(down=True)

    results = start_behind_a_first(consul, ["a", "b"])

    assert results == {"first": "unavailable", "a": "unavailable", "b": "unavailable"}


@pytest.mark.parametrize("count", [1, 5])
def test_a_batch_never_exceeds_the_limit(count: int) -> None:
    consul = Consul()
    consul.release.set()
    batches = Batches(consul.send, limit=3, head=lambda: list(HEAD))
    threads, results = writers(batches, [f"w{i}" for i in range(count)])
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert set(results.values()) == {"ok"}
    assert all(len(ops) <= 3 for ops in consul.sent)
    assert sorted(i for ops in consul.sent for i in ops[1:]) == sorted(results)
