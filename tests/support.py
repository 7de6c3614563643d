"""What the unit tests share: captured `docker inspect` output, the usual policy and container,
and the daemon's loop run on a thread of its own (the real stack's helpers are `harness`).

Their fixtures are in tests/unit/conftest.py; tests import names from here, never from conftest.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from registrator.core.events import ContainerEvent
from registrator.core.model import Binding, Container, ContainerID, Port
from registrator.core.policy import Policy
from registrator.docker.events import HAPPENED
from registrator.runtime.daemon import Daemon

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@contextmanager
def running(daemon: Daemon) -> Iterator[threading.Thread]:
    """`daemon.run()` on a thread, stopped on the way out as the CLI stops it on a signal."""
    thread = threading.Thread(target=daemon.run, name="daemon-under-test", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        daemon.request_stop()
        thread.join(timeout=15)


#: The policy most unit tests derive with: host identity `h`, agent address 10.0.0.5.
POLICY = Policy(hostname="h", advertise_address="10.0.0.5")


def web(cid: str = "c1", name: str = "web", *, host_port: int = 32768, **changes: Any) -> Container:
    """A running nginx container publishing 80/tcp on `host_port`, with any field changed."""
    port = Port(80, "tcp", (Binding("0.0.0.0", host_port),))
    base = Container(ContainerID(cid), name, "nginx", ports=(port,))
    return dataclasses.replace(base, **changes)


def docker_event(
    container: str, action: str, exit_code: int | None = None, signal: int | None = None
) -> ContainerEvent:
    """The event the Docker adapter makes of Docker's `action` (`start`, `die`, `kill`...)."""
    return ContainerEvent(ContainerID(container), HAPPENED[action], exit_code, signal)
