"""Where Podman's Docker-compatible API answers otherwise than Docker, turned into Docker's answer.

Read from Podman 4.3.1's own service (`podman system service`); the captured answers are the
`tests/fixtures/podman-*` files, and tests/integration/test_podman_contract.py holds them
against a real Podman:

- The event filter knows Podman's own names: `event=die` matches nothing (it is `died`), nor
  does `event=destroy` (`remove`). The events themselves say `die` and `remove`.
- A network event's actor is the container, and its attributes name no `container`.
- A `die` event carries `exitCode` (and `containerExitCode`, which every event carries).
- `health_status` comes bare, its value in `HealthStatus`, once per probe rather than per
  change: harmless, each event only asks for a fresh inspect.
- A binding to every address says `HostIp: ""` (Docker: `0.0.0.0`); `--network host` gives no
  `Networks` at all. The core reads both as Docker's.
- A pod's containers each report every port of the pod: `pods.py` shares them out.

What cannot be made Docker's answer is `LIMITATIONS`, logged once at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the component `/version` names when Podman serves the API
PODMAN_ENGINE = "Podman Engine"
#: what Podman's event filter calls Docker's actions
FILTER_NAMES = {"die": "died", "destroy": "remove"}
#: Podman's actions -> Docker's
ACTIONS = {"died": "die", "remove": "destroy"}
#: what cannot work through Podman's API, by the feature it costs
LIMITATIONS: Mapping[str, str] = {
    "drain": "drain before stop does not start: Podman's stop sends no kill event and its "
    "kill event names no signal; services are deregistered when the container dies",
    "healthcheck": "Podman runs HEALTHCHECK probes from systemd timers: without systemd no "
    "probe runs unless something calls `podman healthcheck run`",
}


def is_podman(version: Mapping[str, Any]) -> bool:
    """Whether an engine's `/version` answer is Podman's."""
    components = version.get("Components") or ()
    return any(str((c or {}).get("Name")) == PODMAN_ENGINE for c in components)


def filter_names(actions: frozenset[str]) -> frozenset[str]:
    """The event filter's names for `actions`: Docker's, and Podman's where they differ."""
    return actions | {FILTER_NAMES[a] for a in actions if a in FILTER_NAMES}


def docker_event(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A Podman event as Docker would have sent it."""
    event = dict(raw)
    action = str(raw.get("Action") or raw.get("status") or "")
    event["Action"] = ACTIONS.get(action, action)
    actor = dict(raw.get("Actor") or {})
    attributes = dict(actor.get("Attributes") or {})
    if raw.get("Type") == "network" and "container" not in attributes:
        attributes["container"] = actor.get("ID") or raw.get("id")
    if event["Action"] == "die" and "exitCode" not in attributes:
        code = attributes.get("containerExitCode")
        if code is not None:
            attributes["exitCode"] = code
    actor["Attributes"] = attributes
    event["Actor"] = actor
    return event
