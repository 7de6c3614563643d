"""One retry policy, built once from settings, for every transient failure.

Only transient errors (a peer that does not answer) are retried; a refusal (403, a bad
request) is not. Each wait is logged before it starts. Tests pass `wait=0` to drop the waits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity
from loguru import logger

from registrator.core.errors import BackendError, DockerUnavailable, RegistryUnavailable

T = TypeVar("T")
TRANSIENT = (RegistryUnavailable, DockerUnavailable)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by total time."""

    attempts: int = 4
    seconds: float = 10.0
    initial: float = 0.05
    maximum: float = 5.0

    def _wait(self) -> tenacity.wait.wait_base:
        exponential = tenacity.wait_exponential(multiplier=self.initial, max=self.maximum)
        return exponential + tenacity.wait_random(0, self.initial)

    def call(self, what: str, fn: Callable[[], T], *, stop: threading.Event | None = None) -> T:
        """`fn()` retried on transient errors; the last error is raised when the bound is hit.

        The first attempt is a plain call: every event makes a few of these, and setting up
        the retry machinery cost more than a request to a local agent. Only a failure builds
        it, with that failure as its first attempt.
        """
        try:
            return fn()
        except TRANSIENT as e:
            if self.attempts <= 1:
                raise
            failed: list[BaseException] = [e]

        def again() -> T:
            if failed:
                raise failed.pop()
            return fn()

        return self._retrying(what, stop)(again)

    def _retrying(self, what: str, stop: threading.Event | None) -> tenacity.Retrying:
        give_up = tenacity.stop_after_attempt(self.attempts) | tenacity.stop_after_delay(
            self.seconds
        )
        if stop is not None:
            give_up = give_up | tenacity.stop_when_event_set(stop)
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TRANSIENT),
            stop=give_up,
            wait=self._wait(),
            before_sleep=_log_wait(what),
            sleep=_sleeper(stop),
            reraise=True,
        )

    def forever(self, what: str, fn: Callable[[], T], *, stop: threading.Event) -> T:
        """`fn()` retried on any backend error until it works or `stop` is set.

        For the daemon's lifelines (the Docker event subscription): giving up would mean
        exiting, which is what gliderlabs/registrator does and what this daemon must not.
        The waits stay bounded by `maximum`. Raises `Stopped` when `stop` ends the wait.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(BackendError),
            stop=tenacity.stop_when_event_set(stop),
            wait=self._wait(),
            before_sleep=_log_wait(what),
            sleep=_sleeper(stop),
            retry_error_cls=_StoppedRetry,
        )
        try:
            return retrying(fn)
        except _StoppedRetry as e:
            raise Stopped(what) from e

    def backoff(self, failures: int) -> float:
        """How long to wait after `failures` consecutive failures of a whole reconcile."""
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = max(failures, 1)
        return float(self._wait()(state))

    @classmethod
    def without_waits(cls, attempts: int = 2) -> RetryPolicy:
        return cls(attempts=attempts, initial=0.0, maximum=0.0)


def first_contact(
    what: str, fn: Callable[[], T], *, attempts: int, interval: float, stop: threading.Event
) -> T:
    """gliderlabs' `-retry-attempts N -retry-interval MS` for the first contact with Consul.

    N more attempts after the first, every `interval` seconds; -1 (the default here) waits for
    as long as it takes, which suits a daemon started before its agent.
    """
    give_up: tenacity.stop.stop_base = tenacity.stop_when_event_set(stop)
    if attempts >= 0:
        give_up = give_up | tenacity.stop_after_attempt(attempts + 1)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TRANSIENT),
        stop=give_up,
        wait=tenacity.wait_fixed(interval),
        before_sleep=_log_wait(what),
        sleep=_sleeper(stop),
        reraise=True,
    )
    return retrying(fn)


class Stopped(Exception):
    """A retry ended because stop was requested."""


class _StoppedRetry(tenacity.RetryError):
    pass


def _sleeper(stop: threading.Event | None) -> Callable[[float], None]:
    """Waits that end early when `stop` is set, so shutdown never waits out a backoff."""
    if stop is None:
        return tenacity.nap.sleep

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return sleep


def _log_wait(what: str) -> Callable[[tenacity.RetryCallState], None]:
    def log(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "retry.wait",
            what=what,
            attempt=state.attempt_number,
            delay=round(delay, 3),
            error=str(error),
        )

    return log


class FailureStreak:
    """Reconciles failed in a row, and whether the registry was unreachable in one of them;
    lanes and the worker report to it at once, so it keeps its own lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0
        self._registry_lost = False

    @property
    def failures(self) -> int:
        with self._lock:
            return self._failures

    def failed(self) -> None:
        with self._lock:
            self._failures += 1

    def ended(self) -> None:
        with self._lock:
            self._failures = 0

    def lost_registry(self) -> None:
        with self._lock:
            self._registry_lost = True

    def registry_back(self) -> bool:
        """True once after a reconcile that followed the registry's loss (a reconnect)."""
        with self._lock:
            back, self._registry_lost = self._registry_lost, False
            return back


@dataclass(frozen=True, slots=True)
class Retrying:
    """Calls made with `policy`'s retries until `stop` is set: what every part of the
    reconcile path calls Docker and the registry through (one, built at start-up)."""

    policy: RetryPolicy
    stop: threading.Event | None = None

    def __call__(self, what: str, fn: Callable[[], T]) -> T:
        return self.policy.call(what, fn, stop=self.stop)
