"""The daemon's heartbeat thread: a lost lease asks for a full pass; failures are retried."""

from __future__ import annotations

import queue
import threading

from registrator.core.errors import RegistryUnavailable
from registrator.core.policy import Policy
from registrator.runtime.daemon import Daemon
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.work import FullPass
from tests.support import wait_until
from tests.unit.fakes import FakeConsul, FakeDocker


class Beats:
    """Answers the daemon's beats from a script: True (lost), False, or an error."""

    def __init__(self, *answers: bool | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else False
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_lost_lease_queues_one_registry_only_full_pass_and_failures_do_not_stop_it() -> None:
    beats = Beats(RegistryUnavailable("down"), RegistryUnavailable("down"), True)
    stop = threading.Event()
    reconciler = Reconciler(FakeDocker(), FakeConsul(), Policy("h"), stop=stop)
    daemon = Daemon(
        reconciler,
        None,  # type: ignore[arg-type]
        heartbeat=beats,
        heartbeat_interval=0.01,
        retry=RetryPolicy.without_waits(),
        stop=stop,
    )
    thread = threading.Thread(target=daemon._beat, daemon=True)
    thread.start()
    try:
        item = daemon._queue.get(timeout=5)
        wait_until(lambda: beats.calls >= 4, what="beats go on after the loss")
    finally:
        stop.set()
        thread.join(timeout=5)

    assert item == FullPass(docker=False)
    assert beats.calls >= 4
    try:
        extra = daemon._queue.get_nowait()
    except queue.Empty:
        extra = None
    assert extra is None
