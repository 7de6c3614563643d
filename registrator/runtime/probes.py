"""The health runner of catalog mode: registrator probes HTTP(S) and TCP checks, runs TTLs.

No agent runs these checks, so registrator does (`core.health` holds the pure
part: what a check asks for, thresholds, the statuses planned). One scheduler thread wakes at
the next probe due and hands it to a small pool (`WORKERS` threads), so a slow or hanging
target costs its own timeout and nobody else's, and no probe ever runs in an event's path.
A result that changes a check's status asks for a reconcile of its container
(`on_change`); the plan then writes that status, once. A result that changes nothing writes
nothing.

A `SERVICE_CHECK_TTL` check is probed by nobody: its result is the application's last report
(`report`, from the agent API registrator answers in `app/check_reports.py`), and the scheduler
wakes at the end of its TTL instead, to make it critical when no report came (`core.ttl`).

Which checks to probe is learnt from the plans themselves: every plan passes its desired
services through `statuses`, so the probes always follow what is desired (a full plan
replaces them all, a scoped one those in its scope).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from loguru import logger

from registrator.core.health import Probe, Threshold, probes, with_statuses
from registrator.core.model import ContainerID, Service, ServiceID
from registrator.core.ttl import Report, Ttl, started


class UnknownCheck(LookupError):
    """A report on a check that is not a TTL check of a service registered here."""


#: probes running at once: each waits on a socket, not on the CPU
WORKERS = 4
#: what of a response body the output keeps
_BODY = 200


class ProbeRunner:
    """Runs the probes of the desired services until `stop` is set."""

    def __init__(
        self,
        *,
        workers: int = WORKERS,
        clock: Callable[[], float] = time.monotonic,
        reported: bool = True,
    ) -> None:
        """`reported`: whether applications can report on their TTL checks (registrator
        listens on `--metrics-addr`); without it each TTL check is said to be unreportable."""
        self._on_change: Callable[[ContainerID], None] = lambda _: None
        self._clock = clock
        self._reported = reported
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="probe")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._probes: dict[str, Probe] = {}
        self._states: dict[str, Threshold] = {}
        self._due: dict[str, float] = {}
        self._running: set[str] = set()
        #: checks whose service was left out for being critical too long (told once)
        self._expired: set[str] = set()

    def statuses(
        self,
        desired: dict[ServiceID, Service],
        actual: Mapping[ServiceID, Service],
        scope: Collection[ServiceID] | None,
    ) -> dict[ServiceID, Service]:
        """`desired` with the probed statuses (see `health.with_statuses`); the probes follow."""
        now = self._clock()
        with self._lock:
            self._follow(desired, actual, scope)
            states = dict(self._states)
            expired = {p.service for p in self._probes.values() if states[p.check].expired(p, now)}
        return with_statuses(desired, actual, states, expired=expired)

    def _follow(
        self,
        desired: Mapping[ServiceID, Service],
        actual: Mapping[ServiceID, Service],
        scope: Collection[ServiceID] | None,
    ) -> None:
        wanted = probes(desired)
        gone = [c for c, p in self._probes.items() if scope is None or p.service in scope]
        for check in gone:
            if check not in wanted:
                self._forget(check)
        for check, probe in wanted.items():
            if self._probes.get(check) != probe:
                service = {probe.service: desired[probe.service]}
                start = with_statuses(service, actual, {})[probe.service]
                status = next(c for c in start.checks if c.id == check)
                self._start(probe, status.status or "critical", status.output)

    def _start(self, probe: Probe, status: str, output: str) -> None:
        """A probe first seen (or redefined): probed now, or its TTL run from now."""
        now = self._clock()
        if probe.kind == "ttl":
            if not self._reported and probe.check not in self._probes:
                _unreportable(probe)
            state = started(probe, status, output, now=now)
            self._states[probe.check], self._due[probe.check] = state, state.due(probe)
        else:
            self._states[probe.check], self._due[probe.check] = Threshold(status, output), now
        self._probes[probe.check] = probe
        self._wake.set()

    def _forget(self, check: str) -> None:
        self._probes.pop(check, None)
        self._states.pop(check, None)
        self._due.pop(check, None)
        self._expired.discard(check)

    def results(self) -> dict[str, tuple[str, str]]:
        """Each probed check's status and output, for `explain` and tests."""
        with self._lock:
            return {c: (s.status, s.output) for c, s in self._states.items()}

    def run(self, stop: threading.Event, on_change: Callable[[ContainerID], None]) -> None:
        """Start the probes that are due, then sleep until the next one is, until `stop`;
        `on_change` is told of each container whose services are to be written again."""
        self._on_change = on_change
        while not stop.is_set():
            self._wake.wait(self._start_due())
            self._wake.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start_due(self) -> float:
        """Hand every due probe to the pool; the seconds until the next one is due."""
        now = self._clock()
        with self._lock:
            due = [c for c, at in self._due.items() if at <= now and c not in self._running]
            jobs = [self._probes[c] for c in due if self._probes[c].kind != "ttl"]
            for probe in jobs:
                self._running.add(probe.check)
                self._due[probe.check] = now + probe.interval
            told = [p.container for p in map(self._probes.get, due) if p and self._lapse(p, now)]
            upcoming = min(self._due.values(), default=now + 1.0)
        for probe in jobs:
            self._pool.submit(self._probe, probe)
        for container in told:
            self._on_change(container)
        return max(0.01, min(1.0, upcoming - now))

    def _lapse(self, probe: Probe, now: float) -> bool:
        """A TTL check due (under the lock): whether its TTL ran out, a held output is to be
        written, or its service is to go."""
        if probe.kind != "ttl":
            return False
        state = self._states[probe.check]
        assert isinstance(state, Ttl)
        expired = state.lapse(probe, now=now)
        flushed = not expired and state.flush(now=now)
        self._due[probe.check] = state.due(probe)
        if expired:
            logger.info("check.ttl_expired", check=probe.check, ttl=probe.interval)
        return self._settled(probe, state, expired or flushed, now)

    def _settled(self, probe: Probe, state: Threshold, changed: bool, now: float) -> bool:
        """Whether the container is to be told (under the lock): its status changed, or it has
        just been critical for the check's `deregister_critical_service_after`."""
        expired = state.expired(probe, now)
        newly = expired and probe.check not in self._expired
        (self._expired.add if expired else self._expired.discard)(probe.check)
        return changed or newly

    def _probe(self, probe: Probe) -> None:
        try:
            result, output = run_probe(probe)
        except Exception as e:  # a probe must never take the runner down
            result, output = "critical", f"probe failed: {e}"
        with self._lock:
            self._running.discard(probe.check)
            state = self._states.get(probe.check)
            if state is None or self._probes.get(probe.check) != probe:
                return  # no longer desired, or redefined meanwhile
            changed = state.observe(probe, result, output, now=self._clock())
            tell = self._settled(probe, state, changed, self._clock())
        if changed:
            logger.debug("check.probed", check=probe.check, status=result, output=output)
        if tell:
            self._on_change(probe.container)

    def report(self, check: str, report: Report) -> None:
        """An application's report on its TTL check (`core.ttl`): its TTL starts again, and a
        status or output to write tells its container. `UnknownCheck` for any other check."""
        now = self._clock()
        with self._lock:
            probe = self._probes.get(check)
            state = self._states.get(check)
            if probe is None or probe.kind != "ttl" or not isinstance(state, Ttl):
                raise UnknownCheck(check)
            changed = state.report(probe, report, now=now)
            self._due[check] = state.due(probe)
            tell = self._settled(probe, state, changed, now)
        if changed:
            logger.debug("check.reported", check=check, status=report.status, output=report.output)
        if tell:
            self._on_change(probe.container)


def _unreportable(probe: Probe) -> None:
    logger.warning(
        "check.ttl_unreportable",
        service=probe.service,
        check=probe.check,
        ttl=probe.interval,
        reason="catalog mode without --metrics-addr: registrator has no listener for the "
        "application's reports, so this TTL check goes critical when its TTL runs out",
    )


def kept_statuses(
    desired: dict[ServiceID, Service],
    actual: Mapping[ServiceID, Service],
    scope: Collection[ServiceID] | None,
) -> dict[ServiceID, Service]:
    """Without a runner (a one-shot `--resync`): each probed check keeps the status the
    catalog holds, so a resync never undoes what the daemon's probes found."""
    return with_statuses(desired, actual, {})


def explained(probe: Probe) -> str:
    """For `explain`: a probe's result now, or what a TTL check waits for."""
    if probe.kind == "ttl":
        return (
            f"TTL {probe.interval:g}s, reported by the application to registrator's "
            f"--metrics-addr (PUT /v1/agent/check/pass/{probe.check})"
        )
    result, output = run_probe(probe)
    return f"{result} now ({output}); every {probe.interval:g}s"


def run_probe(probe: Probe) -> tuple[str, str]:
    """One probe, now: its result (passing, warning, critical) and output."""
    if probe.kind == "tcp":
        return _tcp(probe)
    return _http(probe)


def _tcp(probe: Probe) -> tuple[str, str]:
    host, _, port = probe.target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=probe.timeout):
            return "passing", f"TCP connect {probe.target}: Success"
    except (OSError, ValueError) as e:
        return "critical", f"dial tcp {probe.target}: {e}"


def _http(probe: Probe) -> tuple[str, str]:
    """Consul's meaning: 2xx passing, 429 warning, anything else (or no answer) critical."""
    parts = urlsplit(probe.target)
    path = parts.path or "/"
    path += f"?{parts.query}" if parts.query else ""
    connection = _connection(probe, parts.scheme, parts.netloc)
    what = f"HTTP {probe.method} {probe.target}"
    try:
        headers = {name: ", ".join(values) for name, values in probe.headers}
        connection.request(probe.method, path, headers=headers)
        response = connection.getresponse()
        body = response.read(_BODY).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        return "critical", f"{what}: {e or type(e).__name__}"
    finally:
        connection.close()
    code = response.status
    result = "passing" if 200 <= code < 300 else "warning" if code == 429 else "critical"
    return result, f"{what}: {code} {response.reason} Output: {body}".rstrip()


def _connection(probe: Probe, scheme: str, netloc: str) -> http.client.HTTPConnection:
    if scheme != "https":
        return http.client.HTTPConnection(netloc, timeout=probe.timeout)
    context = ssl.create_default_context()
    if probe.tls_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection(netloc, timeout=probe.timeout, context=context)
