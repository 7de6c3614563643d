"""Raw Docker events -> the events the daemon acts on."""

from __future__ import annotations

from typing import Any

import pytest

from registrator.docker_engine import Event, event_from_docker
from registrator.model import ContainerID


def raw(action: str, **attributes: str) -> dict[str, Any]:
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": "c1", "Attributes": attributes},
        "timeNano": 5,
    }


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (raw("die", exitCode="137"), Event(ContainerID("c1"), "die", 5, 137)),
        (raw("die"), Event(ContainerID("c1"), "die", 5, None)),
        (raw("die", exitCode="x"), Event(ContainerID("c1"), "die", 5, None)),
        (raw("start", exitCode="1"), Event(ContainerID("c1"), "start", 5, None)),
        (raw("exec_start: sh"), None),
    ],
)
def test_a_die_event_carries_its_exit_code(event: dict[str, Any], expected: Event | None) -> None:
    assert event_from_docker(event) == expected
