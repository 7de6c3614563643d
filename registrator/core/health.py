"""Health without an agent: what registrator probes, the thresholds, and the status it writes.

Pure: no sockets, no clock (times are passed in). `runtime/probes.py` runs the probes and
feeds the results here.

In catalog mode no agent runs a service's HTTP or TCP check, so registrator runs it from the
host (`Probe`, read from the check's definition), and no agent runs a `SERVICE_CHECK_TTL`
check's TTL, so registrator does (a "ttl" probe: the result is the application's last report,
`core/ttl.py`) and holds its status in a `Threshold`: a
status changes only after `success_before_passing` passes in a row, or
`failures_before_critical` failures in a row (Consul's own meaning of the two; 0 changes at
once). Only a change is a new status; the output written is the output of the probe that
made it, so 100 checks every 10 s that keep passing write nothing.

`with_statuses` puts those statuses into the desired services, which makes the plan's own
diff write a status exactly when it changed. A check not probed yet keeps the status the
catalog holds (a restarted registrator adopts its checks without a write), else starts as
declared (`SERVICE_CHECK_INITIAL_STATUS`), else critical, as Consul starts a check. A service
whose check has been critical for its `deregister_critical_service_after` is left out of the
desired services, so the plan removes it; it comes back once the check passes again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from registrator.core.durations import DurationError, nanoseconds
from registrator.core.model import Check, ContainerID, Service, ServiceID

#: Consul's timeout for an HTTP or TCP check that declares none
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Probe:
    """One HTTP(S) or TCP check as registrator runs it from the host."""

    check: str
    service: ServiceID
    container: ContainerID
    #: "http" (`target` is the URL), "tcp" (`target` is HOST:PORT) or "ttl" (no target: the
    #: application reports, `core.ttl`; `interval` is the TTL)
    kind: str
    target: str
    interval: float
    timeout: float = DEFAULT_TIMEOUT
    method: str = "GET"
    headers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    tls_skip_verify: bool = False
    success_before_passing: int = 0
    failures_before_critical: int = 0
    #: seconds critical after which the service is deregistered (0: never)
    deregister_after: float = 0
    initial: str = "critical"


def probe_of(service: Service, check: Check) -> Probe | None:
    """The probe an HTTP, TCP or TTL check of `service` asks for; None for any other check."""
    spec = dict(check.definition)
    if "TTL" in spec and check.status is None:
        return _ttl_of(service, check, spec)
    kind, target = ("http", spec.get("HTTP")) if "HTTP" in spec else ("tcp", spec.get("TCP"))
    if not isinstance(target, str) or check.status is not None:
        return None
    interval = _seconds(spec.get("Interval")) or 10.0
    headers = spec.get("Header")
    return Probe(
        check=check.id,
        service=service.id,
        container=ContainerID(service.container),
        kind=kind,
        target=target,
        interval=interval,
        timeout=_seconds(spec.get("Timeout")) or min(DEFAULT_TIMEOUT, interval),
        method=str(spec.get("Method") or "GET"),
        headers=_headers(headers),
        tls_skip_verify=spec.get("TLSSkipVerify") is True,
        success_before_passing=_count(spec.get("SuccessBeforePassing")),
        failures_before_critical=_count(spec.get("FailuresBeforeCritical")),
        deregister_after=_seconds(spec.get("DeregisterCriticalServiceAfter")),
        initial=str(spec.get("Status") or "critical"),
    )


def _ttl_of(service: Service, check: Check, spec: Mapping[str, object]) -> Probe | None:
    """A declared TTL check (not one registrator drives: those have a status); None for a TTL
    Go cannot parse, which the registry refuses anyway."""
    try:
        ttl = _seconds(spec["TTL"])
    except DurationError:
        return None
    if ttl <= 0:
        return None
    return Probe(
        check=check.id,
        service=service.id,
        container=ContainerID(service.container),
        kind="ttl",
        target="",
        interval=ttl,
        deregister_after=_seconds(spec.get("DeregisterCriticalServiceAfter")),
        initial=str(spec.get("Status") or "critical"),
    )


def _seconds(value: object) -> float:
    return nanoseconds(value) / 1e9 if isinstance(value, str) and value else 0.0


def _headers(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, tuple):
        return ()
    return tuple((str(n), tuple(str(v) for v in vs)) for n, vs in value if isinstance(vs, tuple))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(slots=True)
class Threshold:
    """A probed check's status: it changes only after enough results in a row agree."""

    status: str
    output: str = ""
    #: when the status last became critical (the caller's clock), None while not critical
    critical_since: float | None = None
    _successes: int = 0
    _failures: int = 0

    def observe(self, probe: Probe, result: str, output: str, *, now: float) -> bool:
        """One probe's result (passing, warning or critical); True when the status changed."""
        if result == "passing":
            self._successes, self._failures = self._successes + 1, 0
            due = self._successes >= probe.success_before_passing
        else:
            self._failures, self._successes = self._failures + 1, 0
            due = self._failures >= probe.failures_before_critical
        if not due or result == self.status:
            return False
        self.status, self.output = result, output
        self.critical_since = now if result == "critical" else None
        return True

    def expired(self, probe: Probe, now: float) -> bool:
        """Critical for the check's `deregister_critical_service_after`: deregister."""
        since = self.critical_since
        after = probe.deregister_after
        return bool(after) and since is not None and now - since >= after


def with_statuses(
    desired: Mapping[ServiceID, Service],
    actual: Mapping[ServiceID, Service],
    states: Mapping[str, Threshold],
    *,
    expired: Collection[ServiceID] = (),
) -> dict[ServiceID, Service]:
    """`desired` with the status of each probed check (see the module's docstring), less the
    services in `expired`."""
    found: dict[ServiceID, Service] = {}
    for service_id, service in desired.items():
        if service_id in expired:
            continue
        held = {c.id: c for c in actual[service_id].checks} if service_id in actual else {}
        checks = tuple(
            _stated(service, c, states.get(c.id), held.get(c.id)) for c in service.checks
        )
        found[service_id] = dataclasses.replace(service, checks=checks)
    return found


def _stated(service: Service, check: Check, state: Threshold | None, held: Check | None) -> Check:
    probe = probe_of(service, check)
    if probe is None:
        return check
    if state is not None:
        return dataclasses.replace(check, status=state.status, output=state.output)
    if held is not None and held.status:
        return dataclasses.replace(check, status=held.status, output=held.output)
    return dataclasses.replace(check, status=probe.initial, output="")


def probes(services: Mapping[ServiceID, Service]) -> dict[str, Probe]:
    """Every probe the services ask for, by check ID."""
    found = (probe_of(s, c) for s in services.values() for c in s.checks)
    return {p.check: p for p in found if p is not None}
