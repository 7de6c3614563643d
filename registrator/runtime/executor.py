"""Executes a plan's actions against the registry, with retries, and says what happened.

Transient failures are retried by the one retry policy; what is left is classified once here.
A missing permission is reported once. A refusal (the registry will never accept that value)
is not repeated: the service is registered without the refused part instead (see
`core.refusals`), and the substitute stands in for the desired service until what is desired
changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from loguru import logger

from registrator.core.errors import RegistryDenied, RegistryError, RegistryRefused
from registrator.core.model import Service, ServiceID
from registrator.core.plan import (
    Action,
    ClearMaintenance,
    Deregister,
    Plan,
    Register,
    SetMaintenance,
    UpdateCheck,
)
from registrator.core.ports import Registry
from registrator.core.refusals import fallback
from registrator.runtime.observer import NULL_OBSERVER, Observer

_T = TypeVar("_T")
#: Runs a registry call under the retry policy: (what, call) -> its result.
Call = Callable[[str, Callable[[], _T]], _T]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconcile did; `errors` non-empty means some writes must be tried again."""

    plan: Plan
    #: actions carried out, by kind (`service.registered`, `check.status`, ...)
    done: Mapping[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    #: containers this reconcile asked Docker to inspect
    inspected: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def registered(self) -> int:
        return self.done.get("service.registered", 0)

    @property
    def updated(self) -> int:
        return self.done.get("service.updated", 0)

    @property
    def deregistered(self) -> int:
        return self.done.get("service.deregistered", 0)


@dataclass(frozen=True, slots=True)
class Applied:
    """What executing a plan did: the actions done by kind, an error line for each that
    failed, and every action the registry carried out, in order (a substitute for a refused
    registration among them), for the caller to record."""

    done: dict[str, int]
    errors: list[str]
    carried_out: list[Action]


class Executor:
    """Carries out actions in order; an action whose service's registration failed is skipped."""

    def __init__(
        self, registry: Registry, *, call: Call[None], observer: Observer = NULL_OBSERVER
    ) -> None:
        self._registry = registry
        self._call = call
        self._observer = observer
        self._denied_reported = False
        #: service ID -> (the desired version the registry refused, what was registered instead,
        #: None when even the plainest form was refused)
        self._refused: dict[ServiceID, tuple[Service, Service | None]] = {}
        self._lock = threading.Lock()  # plans of different services run at the same time

    def substitute(self, desired: Mapping[ServiceID, Service]) -> dict[ServiceID, Service]:
        """`desired`, with what the registry holds instead of each version it refused.

        Versions are compared as the registry stores them: a Register can carry other tags
        than desired where comparing never looks (tags the catalog overrides).
        """
        swapped = dict(desired)
        with self._lock:
            refusals = list(self._refused.items())
        for service_id, (refused, instead) in refusals:
            wanted = swapped.get(service_id)
            if wanted is None or not self._same(wanted, refused):
                continue
            if instead is None:
                del swapped[service_id]  # nothing of it could be registered: not asked again
            else:
                swapped[service_id] = instead
        return swapped

    def _same(self, one: Service, other: Service) -> bool:
        stored = self._registry.stored
        return one == other or (stored(one) is not None and stored(one) == stored(other))

    def apply(
        self, plan: Plan, *, origins: Mapping[ServiceID, str], progress: bool = True
    ) -> Applied:
        """Execute `plan`; `origins` names the container of each service, for the log lines.

        Without `progress` the caller reports progress itself (it runs many small plans)."""
        done: dict[str, int] = {}
        out = Applied(done, [], [])
        failed: set[ServiceID] = set()
        for number, action in enumerate(plan.actions, 1):
            if action.service_id in failed:
                continue
            substituted = False
            if self._attempt(action, out, origins):
                done[action.kind] = done.get(action.kind, 0) + 1
                substituted = isinstance(action, Register) and self._substituted(action.service)
                if not substituted:  # else the substitute was carried out instead
                    out.carried_out.append(action)
                self._written(action, origins.get(action.service_id, ""))
            else:
                failed.add(action.service_id)
            if substituted:
                failed.add(action.service_id)  # the rest was planned for the refused version
            if progress:
                self._observer.progress("write", done=number, total=len(plan.actions))
        return out

    def report_denied(self, error: RegistryDenied) -> None:
        """Say once, clearly, that the token lacks a permission; retries stay quiet about it."""
        self._observer.failed("registry.permission_denied")
        with self._lock:  # lanes and full passes may be refused at the same moment
            reported, self._denied_reported = self._denied_reported, True
        if reported:
            logger.debug("registry.permission_denied", error=str(error))
            return
        logger.error(
            "registry.permission_denied",
            error=str(error),
            hint=error.hint,
        )

    def _substituted(self, service: Service) -> bool:
        with self._lock:
            refused = self._refused.get(service.id)
        return refused is not None and refused[0] is service

    def _attempt(self, action: Action, out: Applied, origins: Mapping[ServiceID, str]) -> bool:
        service_id, errors = action.service_id, out.errors
        try:
            self._call(action.kind, lambda: self._execute(action))
        except RegistryDenied as e:
            self.report_denied(e)
            errors.append(f"{service_id}: permission denied")
            return False
        except RegistryRefused as e:
            if isinstance(action, Register):
                origin = origins.get(service_id, "")
                return self._register_instead(action.service, action.service, str(e), out, origin)
            return self._failed(service_id, e, errors)
        except RegistryError as e:
            return self._failed(service_id, e, errors)
        return True

    def _execute(self, action: Action) -> None:
        registry = self._registry
        if isinstance(action, Register):
            registry.register(action.service)
        elif isinstance(action, Deregister):
            registry.deregister(action.service_id)
        elif isinstance(action, SetMaintenance | ClearMaintenance):
            enabled = isinstance(action, SetMaintenance)
            reason = action.reason if isinstance(action, SetMaintenance) else ""
            for service_id in filter(None, (action.service_id, action.sidecar)):
                registry.set_maintenance(service_id, enabled=enabled, reason=reason)
        else:
            registry.update_ttl(action.check)

    def _register_instead(
        self, desired: Service, refused: Service, message: str, out: Applied, origin: str
    ) -> bool:
        """The registry refused `refused`: register a plainer version, once, and remember it."""
        self._observer.failed("registry.refused")
        logger.error(
            "registry.refused",
            container=origin,
            service=desired.id,
            error=message,
            hint="registered without the refused part; fix the container's declaration",
        )
        instead = fallback(desired, refused, message)
        if instead is None:
            # a permanent refusal of even the plainest form: remembered, never written again
            # until what is desired changes, and not an error owing a retry
            with self._lock:
                self._refused[desired.id] = (desired, None)
            logger.error("registry.refused_whole", service=desired.id, error=message)
            return False
        try:
            self._call("service.registered", lambda: self._register_whole(instead, out))
        except RegistryRefused as e:
            return self._register_instead(desired, instead, str(e), out, origin)
        except RegistryError as e:
            return self._failed(desired.id, e, out.errors)
        with self._lock:
            self._refused[desired.id] = (desired, instead)
        return True

    def _register_whole(self, service: Service, out: Applied) -> None:
        """Register `service` and give its driven checks their output (the refusal message)."""
        self._registry.register(service)
        out.carried_out.append(Register(service))
        for check in service.checks:
            if check.status is not None:
                self._registry.update_ttl(check)
                out.carried_out.append(UpdateCheck(service.id, check))

    def _failed(self, service_id: ServiceID, error: RegistryError, errors: list[str]) -> bool:
        logger.error("registry.write_failed", service=service_id, error=str(error))
        self._observer.failed("registry.write_failed")
        errors.append(f"{service_id}: {error}")
        return False

    def _written(self, action: Action, origin: str) -> None:
        service_id = action.service_id
        if isinstance(action, UpdateCheck):
            check = action.check
            if action.changed:
                logger.info(
                    "check.status", check=check.id, status=check.status, output=check.output
                )
            else:
                logger.debug("check.refreshed", check=check.id, status=check.status)
            return
        if isinstance(action, Deregister):
            with self._lock:
                self._refused.pop(service_id, None)
        fields: dict[str, str] = {"service": service_id, "container": origin}
        if isinstance(action, SetMaintenance):
            fields["reason"] = action.reason
        logger.info(action.kind, **fields)
        self._observer.written(action.kind)
