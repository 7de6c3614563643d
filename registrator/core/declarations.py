"""Read a container's `SERVICE_*` declarations from its environment and labels.

The `SERVICE_` prefix is case-sensitive, the key after it is not. A key whose first part is a
number applies to that container port only (`SERVICE_80_NAME`). Lookup precedence, highest
first: per-port label, per-port env, generic label, generic env. gliderlabs reads labels in map
order, so its result can vary; this one is deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

from registrator.core.flags import parse_flag
from registrator.core.model import Container

PREFIX = "SERVICE_"
_PER_PORT = re.compile(r"^(\d+)_(.+)$")


@dataclass(frozen=True, slots=True)
class Declared:
    """One `SERVICE_*` value and where it came from, for log lines that name the source."""

    source: str  # the key as the container spells it, e.g. "SERVICE_80_NAME"
    value: str


@dataclass(frozen=True, slots=True)
class Declarations:
    """All `SERVICE_*` keys of one container, keyed by upper-case name (without prefix)."""

    generic: dict[str, Declared]
    per_port: dict[int, dict[str, Declared]]

    def get(self, key: str, port: int | None = None) -> Declared | None:
        """The value for `key` on `port`: a per-port key beats the generic one."""
        if port is not None:
            found = self.per_port.get(port, {}).get(key)
            if found is not None:
                return found
        return self.generic.get(key)

    def keys(self, port: int | None = None) -> dict[str, Declared]:
        """Every key that applies to `port` (or only the generic ones), per-port winning."""
        merged = dict(self.generic)
        if port is not None:
            merged.update(self.per_port.get(port, {}))
        return merged


def declarations(container: Container) -> Declarations:
    """Collect the container's declarations; labels are read after env so they win ties."""
    generic: dict[str, Declared] = {}
    per_port: dict[int, dict[str, Declared]] = {}
    for source in (container.env, container.labels):
        for raw_key in sorted(source):
            if not raw_key.startswith(PREFIX) or len(raw_key) == len(PREFIX):
                continue
            declared = Declared(source=raw_key, value=source[raw_key])
            key = raw_key[len(PREFIX) :].upper()
            match = _PER_PORT.match(key)
            if match:
                per_port.setdefault(int(match.group(1)), {})[match.group(2)] = declared
            else:
                generic[key] = declared
    return Declarations(generic=generic, per_port=per_port)


def says_yes(declared: Declared | None) -> TypeGuard[Declared]:
    """`SERVICE_IGNORE`: gliderlabs ignores on any non-empty value; `false`, `0`, `no` do not."""
    return (
        declared is not None
        and bool(declared.value.strip())
        and parse_flag(declared.value) is not False
    )


def port_number(text: str) -> int | None:
    """`8080` -> 8080; None for anything that is not a port number (1-65535)."""
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 5:
        return None
    number = int(value)
    return number if 0 < number < 65536 else None
