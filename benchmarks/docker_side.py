"""The benchmark's containers and the Docker event times they are measured from.

Every container is labelled with the run's id and named `bench-<run>-<n>`, and all of them are
removed at the end; the benchmark never touches a container it did not create.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import requests.exceptions

from benchmarks.engines import is_podman
from harness import TEST_IMAGE, wait_until

BENCH_LABEL = "org.registrator.bench.run"
#: the PID of the benchmark process that made the container: another run's, while it lives,
#: is never a leftover (several benchmarks may share one daemon)
BENCH_PID_LABEL = "org.registrator.bench.pid"
#: how many Docker API calls the benchmark makes at once when it starts or removes a burst
PARALLEL_CALLS = 16


class Interrupted(Exception):
    """Something outside the benchmark broke the run (dockerd restarted); it can be run again."""


class EventTimes:
    """Follows Docker's `start` and `die` events of this run's containers, keeping `timeNano`.

    The stream ending before `close()` means dockerd stopped, which kills every container:
    `check()` then raises `Interrupted`.
    """

    def __init__(self, api: docker.APIClient, run: str) -> None:
        self._times: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.ended = threading.Event()
        self._stream = api.events(
            decode=True,
            filters={
                "type": "container",
                "label": f"{BENCH_LABEL}={run}",
                # Podman's filter calls `die` `died` (its events still say `die`)
                "event": ["start", "die", *(["died"] if is_podman(api) else [])],
            },
        )
        self._thread = threading.Thread(target=self._follow, name="docker-events", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        with contextlib.suppress(Exception):  # the stream raises when close() cuts it
            for raw in self._stream:
                key = (str(raw.get("id") or ""), str(raw.get("status") or raw.get("Action")))
                with self._lock:
                    self._times.setdefault(key, int(raw["timeNano"]))
        self.ended.set()

    def check(self) -> None:
        if self.ended.is_set() and not self._closed.is_set():
            raise Interrupted("Docker's event stream ended: dockerd was restarted")

    def time_ns(self, container: str, action: str) -> int | None:
        with self._lock:
            return self._times.get((container, action))

    def wait(self, containers: Iterable[str], action: str, *, timeout: float = 60) -> list[int]:
        """The `action` event times of all `containers`, waiting for the ones not seen yet."""
        wanted = list(containers)

        def all_seen() -> list[int] | None:
            self.check()
            found = [self.time_ns(c, action) for c in wanted]
            return None if None in found else [t for t in found if t is not None]

        return wait_until(all_seen, timeout=timeout, interval=0.002, what=f"{action} events")

    def close(self) -> None:
        self._closed.set()
        self._stream.close()


class BenchContainers:
    """Creates, starts, kills and removes this run's containers: `sleep`, port 80 published."""

    def __init__(
        self, api: docker.APIClient, run: str, *, env: dict[str, str] | None = None
    ) -> None:
        self.api = api
        self.run = run
        #: the environment of every container made (SERVICE_* keys for a scenario)
        self.env = env or {}
        self._count = 0
        self.ids: list[str] = []
        self.names: dict[str, str] = {}

    def create(self, count: int) -> list[str]:
        """`count` new containers, created (not started), in parallel."""
        names = [f"bench-{self.run}-{self._count + i}" for i in range(count)]
        self._count += count
        made = self._each(self._create_one, names)
        self.ids.extend(made)
        self.names.update(zip(made, names, strict=True))
        return made

    def _create_one(self, name: str) -> str:
        created = self.api.create_container(
            TEST_IMAGE,
            command=["sleep", "3600"],
            environment=self.env,
            labels={BENCH_LABEL: self.run, BENCH_PID_LABEL: str(os.getpid())},
            ports=[80],
            name=name,
            host_config=self.api.create_host_config(port_bindings={80: 0}),
        )
        return str(created["Id"])

    def start(self, containers: list[str]) -> None:
        self._each(self.api.start, containers)

    def start_one(self, container: str) -> None:
        self.api.start(container)

    def kill(self, container: str) -> None:
        self.api.kill(container)

    def remove(self, containers: list[str]) -> None:
        self._each(self._remove_one, containers)

    def _remove_one(self, container: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container, force=True)

    def remove_all(self, *, timeout: float = 120) -> None:
        """Every container carrying this run's label; waits out a dockerd restart to do it."""

        def removed() -> bool:
            try:
                self.remove(leftovers(self.api, run=self.run))
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                return False
            return True

        wait_until(removed, timeout=timeout, interval=1, what="benchmark containers removed")
        self.ids.clear()

    def _each(self, fn: Callable[[str], Any], items: list[str]) -> list[Any]:
        if len(items) == 1:
            return [fn(items[0])]
        with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
            return list(pool.map(fn, items))


def leftovers(api: docker.APIClient, *, run: str = "") -> list[str]:
    """Containers of the benchmark's run `run`, or of any run whose process is gone (killed
    before it could clean up)."""
    label = f"{BENCH_LABEL}={run}" if run else BENCH_LABEL
    rows = api.containers(all=True, filters={"label": label})
    return [str(row["Id"]) for row in rows if run or not _alive(row.get("Labels") or {})]


def _alive(labels: dict[str, str]) -> bool:
    """Whether the benchmark process that made a container still runs."""
    pid = labels.get(BENCH_PID_LABEL, "")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
