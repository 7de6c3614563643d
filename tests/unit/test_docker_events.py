"""Raw Docker events -> the events the daemon acts on."""

from __future__ import annotations

from typing import Any

import pytest

from registrator.core.events import ContainerEvent, Happened
from registrator.core.model import ContainerID
from registrator.docker.events import event_from_docker


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
        (raw("die", exitCode="137"), ContainerEvent(ContainerID("c1"), Happened.EXITED, 137)),
        (raw("die"), ContainerEvent(ContainerID("c1"), Happened.EXITED, None)),
        (raw("die", exitCode="x"), ContainerEvent(ContainerID("c1"), Happened.EXITED, None)),
        (raw("start", exitCode="1"), ContainerEvent(ContainerID("c1"), Happened.STARTED, None)),
        (raw("exec_start: sh"), None),
    ],
)
def test_a_die_event_carries_its_exit_code(
    event: dict[str, Any], expected: ContainerEvent | None
) -> None:
    assert event_from_docker(event) == expected
