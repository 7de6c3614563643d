"""The claims and the drains are values: a change makes a new one and leaves the old as it was."""

from __future__ import annotations

import dataclasses

from registrator.core.decide import decide
from registrator.core.model import ContainerID, ServiceID
from registrator.core.policy import Policy
from registrator.runtime.claims import Claims
from registrator.runtime.drains import Drains
from tests.support import web

POLICY = Policy("h", explicit=False)


def test_a_claim_changes_a_new_value_and_the_last_claimer_of_an_id_wins() -> None:
    old, new = web("c1", "web"), web("c2", "web")
    first = Claims().replaced(old.id, None, decide(old, POLICY, None))
    both = first.replaced(new.id, None, decide(new, POLICY, None))
    (sid,) = first.desired()

    assert first.desired()[sid].container == "c1"
    assert both.desired([sid])[sid].container == "c2"
    assert both.replaced(new.id, decide(new, POLICY, None), None).desired()[sid].container == "c1"
    assert Claims().desired([ServiceID("nothing")]) == {}


def test_a_drain_started_and_stopped_is_a_new_value() -> None:
    c = dataclasses.replace(web(), stop_timeout=10)
    started = Drains().started(c, now=100.0)

    assert Drains().deadline() is None
    assert started.due(200.0) == [ContainerID("c1")]
    assert started.stopped(c.id).deadline() is None
    assert started.deadline() is not None
