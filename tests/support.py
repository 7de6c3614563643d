"""What the unit tests share: captured `docker inspect` output, and the daemon's loop run on a
thread of its own (the real stack's helpers are `harness`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
