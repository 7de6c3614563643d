"""The heartbeat thread: a lost lease asks for one full pass; failures do not stop it."""

from __future__ import annotations

import threading

from harness import wait_until
from registrator.core.errors import RegistryUnavailable
from registrator.runtime.heartbeat import keep_alive


class Beats:
    """Answers beats from a script: True (lost), False, or an error to raise."""

    def __init__(self, *answers: bool | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else False
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_lost_lease_is_reported_once_and_failures_do_not_stop_the_beats() -> None:
    beats = Beats(RegistryUnavailable("down"), RegistryUnavailable("down"), True, False)
    stop, lost = threading.Event(), []
    thread = threading.Thread(
        target=keep_alive,
        args=(beats, 0.01),
        kwargs={"stop": stop, "on_lost": lambda: lost.append(beats.calls)},
        daemon=True,
    )
    thread.start()
    try:
        wait_until(lambda: beats.calls >= 6, what="beats go on after failures and the loss")
    finally:
        stop.set()
        thread.join(timeout=5)

    assert lost == [3]
