"""Drain before stop: a container asked to stop leaves every healthy answer at once.

`docker stop` sends the container its stop signal and waits its stop timeout before SIGKILL;
a well-behaved process finishes its requests meanwhile. Until it dies, Consul would still
advertise it, and clients would keep sending it new requests. Docker reports the signal as a
`kill` event; the runtime marks the container `draining` from that event alone, and the rule
here decides what its services become: maintenance mode (reported critical, out of DNS and
`?passing` answers), or nothing at all (`--drain deregister`). `SERVICE_DRAIN=off` opts a
container out. A drain lasts at most the stop timeout plus `GRACE`: a container still running
then was not being stopped (an application that reloads on SIGTERM), and is registered again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from registrator.core.declarations import declarations
from registrator.core.flags import parse_flag
from registrator.core.model import Container, Derivation, Problem
from registrator.core.policy import DrainMode, Policy

#: The maintenance reason a drained service carries, as Consul shows it to operators.
DRAINING = "draining: container stopping"
#: Seconds past a container's stop timeout after which its drain is lifted.
GRACE = 5
SIGTERM = 15

#: Linux signal numbers by name (Docker's numbering, whatever platform registrator runs on).
_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}  # fmt: skip
_RTMIN, _RTMAX = 34, 64


def signal_number(text: str) -> int | None:
    """`SIGQUIT`, `quit`, `3`, `SIGRTMIN+3` -> the signal's number; None when it is none."""
    name = text.strip().upper().removeprefix("SIG")
    if name.isdigit():
        number = int(name)
        return number if 0 < number <= _RTMAX else None
    if name in _SIGNALS:
        return _SIGNALS[name]
    for base, start in (("RTMIN", _RTMIN), ("RTMAX", _RTMAX)):
        if name.startswith(base):
            return _realtime(start, name[len(base) :])
    return None


def _realtime(start: int, offset: str) -> int | None:
    """`RTMIN`, `RTMIN+3`, `RTMAX-2`: real-time signals, as Docker names them."""
    if not offset:
        return start
    if offset[0] not in "+-" or not offset[1:].isdigit():
        return None
    number = start + int(offset[1:]) * (1 if offset[0] == "+" else -1)
    return number if _RTMIN <= number <= _RTMAX else None


def signal_name(number: int) -> str:
    """15 -> `SIGTERM`, for log lines and `explain`."""
    names = {n: k for k, n in reversed(_SIGNALS.items())}
    return f"SIG{names[number]}" if number in names else f"signal {number}"


@dataclass(frozen=True, slots=True)
class Drain:
    """How one container is drained, and what says so (for `explain` and log lines)."""

    mode: DrainMode
    #: `--drain maintenance`, `SERVICE_DRAIN=off`
    source: str
    problems: tuple[Problem, ...] = ()


def drain_for(container: Container, policy: Policy) -> Drain:
    """`--drain`, unless the container's `SERVICE_DRAIN` opts it out."""
    decl = declarations(container)
    whole = "a drain is for the whole container: use SERVICE_DRAIN; key ignored"
    per_port = (keys["DRAIN"] for keys in decl.per_port.values() if "DRAIN" in keys)
    problems = [Problem(container.name, d.source, d.value, whole) for d in per_port]
    declared = decl.generic.get("DRAIN")
    opted = parse_flag(declared.value) if declared is not None else None
    if declared is not None and opted is None:
        reason = f"not a yes/no value: --drain {policy.drain} applies"
        problems.append(Problem(container.name, declared.source, declared.value, reason))
    if declared is not None and opted is False:
        return Drain("off", f"{declared.source}={declared.value}", tuple(problems))
    return Drain(policy.drain, f"--drain {policy.drain}", tuple(problems))


def lifted_after(container: Container) -> int:
    """Seconds after the stop signal at which a drain still in progress is lifted."""
    return container.stop_timeout + GRACE


def drained(container: Container, derivation: Derivation, policy: Policy) -> Derivation:
    """`derivation` with the drain rule applied; its declaration problems join the others."""
    if not derivation.services:
        return derivation
    drain = drain_for(container, policy)
    problems = derivation.problems + drain.problems
    if not container.draining or drain.mode == "off":
        return dataclasses.replace(derivation, problems=problems)
    if drain.mode == "deregister":
        skipped = (*derivation.skipped, ("container", f"{DRAINING} ({drain.source})"))
        return Derivation(problems=problems, skipped=skipped)
    services = tuple(dataclasses.replace(s, maintenance=DRAINING) for s in derivation.services)
    return dataclasses.replace(derivation, services=services, problems=problems)
