"""The watcher: Docker's event stream in, each event handed to its lane.

It holds the engine's subscription. When the stream ends or breaks (Docker restarted, socket
gone) it subscribes again with backoff and owes a full pass with fresh inspects, because
events may have been missed meanwhile; the first subscription owes the start-up's pass.
Closing the subscription (`close`, on stop) is what unblocks it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from loguru import logger

from registrator.core.errors import BackendError
from registrator.core.events import EngineEvent, Happened, ServiceUpdate
from registrator.core.model import ContainerID
from registrator.core.ports import EventSource, Subscription
from registrator.runtime.lanes import Lanes
from registrator.runtime.observer import NULL_OBSERVER, Observer
from registrator.runtime.retry import RetryPolicy, Stopped
from registrator.runtime.work import FullPass, Pending

#: A Swarm service's updates have a lane of their own: "service:" and its ID.
SERVICE_LANE = "service:"


class Watcher:
    """`run` until `stop` is set: events to `lanes`, owed full passes to `owe`."""

    def __init__(
        self,
        events: EventSource,
        *,
        retry: RetryPolicy,
        stop: threading.Event,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._events = events
        self._retry = retry
        self._stop = stop
        self._observer = observer
        self._subscription: Subscription | None = None

    def run(
        self,
        lanes: Lanes[str, Pending],
        may_drain: Callable[[ContainerID, int | None], bool],
        owe: Callable[[FullPass], None],
    ) -> None:
        reinspect = False
        while not self._stop.is_set():
            try:
                self._subscription = self._retry.forever(
                    "docker.events.subscribe", self._events.events, stop=self._stop
                )
            except Stopped:
                return
            if reinspect:
                logger.info("docker.events.reconnected")
                self._observer.reconnected("docker")
            else:
                logger.info("docker.events.subscribed")
            owe(FullPass.RESYNC | FullPass.REINSPECT if reinspect else FullPass.RESYNC)
            self._follow(self._subscription, lanes, may_drain)
            reinspect = True

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()

    def _follow(
        self,
        subscription: Subscription,
        lanes: Lanes[str, Pending],
        may_drain: Callable[[ContainerID, int | None], bool],
    ) -> None:
        try:
            forward(subscription, lanes, may_drain)
            if not self._stop.is_set():
                logger.warning("docker.events.closed")
                self._observer.failed("docker.events.closed")
        except BackendError as e:
            if not self._stop.is_set():
                logger.warning("docker.events.broken", error=str(e))
                self._observer.failed("docker.events.broken")


def forward(
    events: Iterable[EngineEvent],
    lanes: Lanes[str, Pending],
    may_drain: Callable[[ContainerID, int | None], bool],
) -> None:
    """Each event to its lane: a container's, or a Swarm service's."""
    for event in events:
        if isinstance(event, ServiceUpdate):
            logger.debug("engine.event", happened="updated", swarm_service=event.service)
            lanes.add(SERVICE_LANE + event.service, event)
        elif event.happened is not Happened.SIGNALLED or may_drain(event.container, event.signal):
            # `docker kill`'s SIGKILL, say, changes nothing: not even a lane's hand-over
            logger.debug("engine.event", happened=event.happened, container=event.container[:12])
            lanes.add(event.container, event)
