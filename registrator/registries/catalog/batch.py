"""Writes that arrive together leave together: one `PUT /v1/txn` for several services.

A burst (many containers started at once, a full pass at start-up) has several reconciles
writing at the same moment. Each hands its operations here; whoever finds no transaction in
flight sends, at once, everything queued (up to `MAX_OPS` operations), and the others wait for
its answer. Nobody waits for a window to fill: a write alone goes out as soon as it comes, and
one that comes while a transaction is in flight goes with the next one. Each batch is sent by
one of the writers in it, so no thread of its own is needed.

A transaction is all or nothing: when Consul refuses a batch, each of its writes is sent again
alone, so a refused value costs only its own service and its error is its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from registrator.core.errors import RegistryError, RegistryRefused

Ops = list[dict[str, Any]]


@dataclass
class _Write:
    what: str
    ops: Ops
    #: set when this write was sent, or when it is its writer's turn to send a batch
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    sent: bool = False
    error: RegistryError | None = None


class Batches:
    """Sends the writes handed to it, those that arrive together in one transaction."""

    def __init__(
        self, send: Callable[[str, Ops], None], *, limit: int, head: Callable[[], Ops]
    ) -> None:
        #: runs one transaction, named for error messages (raises what Consul's answer means)
        self._send = send
        self._limit = limit
        #: the operations every transaction starts with (the node), sent once per batch
        self._head = head
        self._lock = threading.Lock()
        self._queue: list[_Write] = []
        self._sending = False

    def write(self, what: str, ops: Ops) -> None:
        """Send `ops` (with others queued meanwhile); raises this write's own error."""
        mine = _Write(what, ops)
        with self._lock:
            self._queue.append(mine)
            if not self._sending:
                self._sending = mine.lead = True
                mine.wake.set()
        while True:
            mine.wake.wait()
            with self._lock:
                mine.wake.clear()
                lead, mine.lead = mine.lead, False
            if lead:
                self._send_one_batch()  # its own write is first in it
            if mine.sent:
                break
        if mine.error is not None:
            raise mine.error

    def _send_one_batch(self) -> None:
        """Send the head of the queue; then hand the turn to the next writer, if any."""
        with self._lock:
            batch = self._take()
        try:
            self._deliver(batch)
        finally:
            with self._lock:
                for write in batch:
                    write.sent = True
                    write.wake.set()
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].wake.set()
                else:
                    self._sending = False

    def _take(self) -> list[_Write]:
        """The writes at the head of the queue that fit in one transaction (at least one)."""
        taken: list[_Write] = []
        size = len(self._head())
        while self._queue and (not taken or size + len(self._queue[0].ops) <= self._limit):
            write = self._queue.pop(0)
            size += len(write.ops)
            taken.append(write)
        return taken

    def _deliver(self, batch: list[_Write]) -> None:
        what = batch[0].what if len(batch) == 1 else f"{len(batch)} writes"
        try:
            self._send(what, [*self._head(), *(op for w in batch for op in w.ops)])
        except RegistryRefused as e:
            if len(batch) == 1:
                batch[0].error = e
                return
            for write in batch:  # each alone, for its own answer
                self._alone(write)
        except RegistryError as e:
            for write in batch:
                write.error = e
        except Exception as e:  # never a writer told "sent" by a batch that was not
            for write in batch:
                write.error = RegistryError(f"{what}: {e!r}")
            raise

    def _alone(self, write: _Write) -> None:
        try:
            self._send(write.what, [*self._head(), *write.ops])
        except RegistryError as e:
            write.error = e
