"""The Consul adapter: the local agent's HTTP API (over `wire.Connections`).

Consul's JSON stops here: callers get `Service` values. Only the agent endpoints are used
(`/v1/agent/...`): registrator manages the services of the agent on its own host, as
gliderlabs/registrator does.

A refusal is a 400, and also the 500s with which Consul 1.8 refuses a definition while the
agent adds it (a tagged address not of its family, a script check on an agent that runs
none): sending the same definition again could never work. Any other 5xx is the agent not
coping (no cluster leader, a timeout) and is retried.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from registrator.core.errors import (
    ConfigError,
    RegistryDenied,
    RegistryError,
    RegistryRefused,
    RegistryUnavailable,
)
from registrator.core.model import OWNER_META_KEY, SIDECAR_SUFFIX, Check, Service, ServiceID
from registrator.core.plan import Action
from registrator.registries.consul.held import applied, reported
from registrator.registries.consul.payload import (
    check_from_agent,
    service_payload,
    services_from_agent,
)
from registrator.registries.consul.target import ConsulTarget
from registrator.wire import TRANSPORT_ERRORS, Answer, Connections, Endpoint, path_segment

#: what a 403 from the agent means
ACL_HINT = "the ACL token needs agent:read and service:write (see README, ACL)"

#: Consul names the check behind a service's maintenance mode `_service_maintenance:<id>`.
MAINTENANCE_CHECK_PREFIX = "_service_maintenance:"
#: Consul's own checks (maintenance mode) start with this: never registrator's to compare.
_CONSUL_CHECK_PREFIX = "_"
#: What Consul 1.8 says in the 500s that refuse a definition (seen from a 1.8.7 agent).
REFUSED_500 = (
    "Scripts are disabled on this agent",
    "must be a valid ipv",
    "Invalid SidecarService",  # no port left in the agent's sidecar range, for one
)
#: Up to this many service IDs are asked for with a filter (8 services and their sidecars);
#: each term costs the agent a pass over its services, so for more it is cheaper to fetch
#: them all.
MAX_FILTERED_IDS = 16


def _owner(data: Mapping[str, Any]) -> str | None:
    meta = data.get("Meta") or {}
    owner = meta.get(OWNER_META_KEY)
    return None if owner is None else str(owner)


def id_filter(field: str, ids: Collection[str] | None) -> dict[str, str]:
    """Query parameters asking only for `ids` (by `field`), or none: a filter for many IDs,
    or for an ID a filter string cannot carry, would cost more than fetching everything."""
    if ids is None or len(ids) > MAX_FILTERED_IDS or any(c in i for i in ids for c in '"\\`'):
        return {}
    return {"filter": " or ".join(f'{field} == "{i}"' for i in sorted(ids))}


def tls_context(target: ConsulTarget) -> ssl.SSLContext:
    """CA, client certificate and verification in one context."""
    cafile = target.verify if isinstance(target.verify, str) else None
    try:
        context = ssl.create_default_context(cafile=cafile)
        if target.cert is not None:
            context.load_cert_chain(*target.cert)
    except (OSError, ssl.SSLError) as e:
        files = ", ".join(f for f in (cafile, *(target.cert or ())) if f)
        raise ConfigError(f"TLS files ({files}): {e.strerror or e}") from e
    if target.verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def checks_by_service(checks: Mapping[str, Any]) -> dict[str, tuple[Check, ...]]:
    """Service checks by service ID, sorted by check ID; Consul's own checks are left out."""
    found: dict[str, list[Check]] = {}
    for raw in checks.values():
        check = check_from_agent(raw)
        if raw.get("ServiceID") and not check.id.startswith(_CONSUL_CHECK_PREFIX):
            found.setdefault(str(raw["ServiceID"]), []).append(check)
    return {sid: tuple(sorted(checks, key=lambda c: c.id)) for sid, checks in found.items()}


def _services_in_maintenance(checks: Mapping[str, Any]) -> dict[str, str]:
    """Service ID -> the reason its maintenance was set with (Consul keeps it as Notes)."""
    return {
        str(check.get("ServiceID")): str(check.get("Notes") or "maintenance")
        for check_id, check in checks.items()
        if str(check_id).startswith(MAINTENANCE_CHECK_PREFIX)
    }


class ConsulAgent:
    """Talks to one Consul agent."""

    def __init__(self, target: ConsulTarget, *, timeout: float = 10) -> None:
        https = target.base_url.startswith("https:")
        tls = tls_context(target) if https else None
        headers = {"X-Consul-Token": target.token} if target.token else {}
        self._http = Connections(
            Endpoint(target.base_url, uds=target.uds, tls=tls), timeout=timeout, headers=headers
        )

    def advertise_address(self) -> str:
        """The address the agent advertises: where services on this host are reachable."""
        data = self._request("GET", "/v1/agent/self").json()
        member = data.get("Member") or {}
        config = data.get("Config") or {}
        return str(member.get("Addr") or config.get("AdvertiseAddr") or "")

    def node(self) -> str:
        """The name of the agent's node: the node every service registered through it joins."""
        data = self._request("GET", "/v1/agent/self").json()
        config = data.get("Config") or {}
        member = data.get("Member") or {}
        return str(config.get("NodeName") or member.get("Name") or "")

    def ping(self, *, timeout: float = 3.0) -> None:
        """Returns when the agent answers within `timeout`; needs no ACL permission."""
        self._request("GET", "/v1/status/leader", timeout=timeout)

    def services(
        self,
        *,
        owner: str | None = None,
        ids: Collection[ServiceID] | None = None,
        with_checks: bool = True,
    ) -> dict[ServiceID, Service]:
        """The agent's services with their checks; with `owner`, only those it marks as owned.

        With `ids`, only those: an event's reconcile asks for its own few services, so its
        cost does not grow with the number of services on the agent. Without `with_checks`
        the services come without checks or maintenance state, one request fewer, for a
        caller that will only remove them.
        """
        if ids is not None and not ids:
            return {}
        # a service's sidecar proxy is read with it (see `services_from_agent`)
        asked = None if ids is None else {*ids, *(f"{i}{SIDECAR_SUFFIX}" for i in ids)}
        params = id_filter("ID", asked)
        data = self._request("GET", "/v1/agent/services", params=params).json() or {}
        owned = [
            raw
            for raw in data.values()
            if (owner is None or _owner(raw) == owner) and (asked is None or raw.get("ID") in asked)
        ]
        checks = self._checks(id_filter("ServiceID", asked)) if owned and with_checks else {}
        found = services_from_agent(
            owned, _services_in_maintenance(checks), checks_by_service(checks)
        )
        return found if ids is None else {i: s for i, s in found.items() if i in ids}

    def stored(self, service: Service) -> Service:
        """The agent holds the whole service; it reports checks back without definitions."""
        return reported(service)

    def applied(self, action: Action, held: Service | None) -> Service | None:
        return applied(action, held, self.stored)

    def update_ttl(self, check: Check) -> None:
        """Set a TTL check's status and output; this also restarts its TTL."""
        self._request(
            "PUT",
            f"/v1/agent/check/update/{path_segment(check.id)}",
            payload={"Status": check.status, "Output": check.output},
        )

    def set_maintenance(self, service: ServiceID, *, enabled: bool, reason: str = "") -> None:
        """Consul's maintenance mode: the service stays registered but is reported critical."""
        params = {"enable": "true" if enabled else "false", "reason": reason}
        path = f"/v1/agent/service/maintenance/{path_segment(service)}"
        self._request("PUT", path, params=params)

    def _checks(self, params: Mapping[str, str]) -> dict[str, Any]:
        checks: dict[str, Any] = (
            self._request("GET", "/v1/agent/checks", params=params).json() or {}
        )
        return checks

    def register(self, service: Service) -> None:
        self._request(
            "PUT",
            "/v1/agent/service/register",
            params={"replace-existing-checks": "true"},
            payload=service_payload(service),
        )

    def deregister(self, service: ServiceID) -> None:
        """Remove `service`; one that is already gone counts as removed."""
        path = f"/v1/agent/service/deregister/{path_segment(service)}"
        self._request("PUT", path, missing_ok=True)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **options: Any) -> Answer:
        """Any call to Consul's HTTP API, with this client's token, TLS and error translation
        (the catalog registry talks to the same API; see `_request` for the options)."""
        return self._request(method, path, **options)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: Any = None,
        timeout: float | None = None,
        missing_ok: bool = False,
        conflict_ok: bool = False,
    ) -> Answer:
        url = f"{path}?{urlencode(params, quote_via=quote)}" if params else path
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            answer = self._http.request(method, url, body=body, headers=headers, timeout=timeout)
        except TRANSPORT_ERRORS as e:
            where = self._http.endpoint.base_url.rstrip("/")
            raise RegistryUnavailable(f"{method} {where}{path}: {e or type(e).__name__}") from e
        if answer.ok or (missing_ok and answer.status == 404):
            return answer
        if conflict_ok and answer.status == 409:  # a transaction's own errors, for the caller
            return answer
        detail = f"{method} {path}: {answer.status} {answer.text.strip()[:200]}"
        if answer.status == 403:
            raise RegistryDenied(detail, hint=ACL_HINT)
        if answer.status == 400 or _refused_500(answer):
            raise RegistryRefused(detail)
        if answer.status >= 500:
            raise RegistryUnavailable(detail)
        raise RegistryError(detail)


def _refused_500(answer: Answer) -> bool:
    return answer.status == 500 and any(text in answer.text for text in REFUSED_500)
