"""Progress lines for long passes: a start-up or `--resync` over thousands of containers.

An operator watching `registrator --resync` on a big host should see it move rather than wonder
whether it hangs. A `reconcile.progress` line (stage, done, total) is logged every `every`
items or every `seconds`, whichever comes first, and a last one when a stage that printed any
finishes. Short passes print nothing. Logs go to stderr, so stdout keeps only the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loguru import logger

from registrator.runtime.observer import NullObserver


class ProgressLog(NullObserver):
    """An observer that turns progress reports into rate-limited log lines."""

    def __init__(
        self,
        *,
        every: int = 100,
        seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._every = every
        self._seconds = seconds
        self._clock = clock
        self._stage = ""
        self._since = 0.0
        self._printed = 0

    def progress(self, stage: str, *, done: int, total: int) -> None:
        now = self._clock()
        if stage != self._stage or done <= 1:
            self._stage, self._since, self._printed = stage, now, 0
        due = done - self._printed >= self._every or now - self._since >= self._seconds
        finished = done == total and self._printed > 0
        if (due or finished) and done > self._printed:
            logger.info("reconcile.progress", stage=stage, done=done, total=total)
            self._since, self._printed = now, done
