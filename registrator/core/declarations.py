"""Read a container's `SERVICE_*` declarations from its environment and labels.

The `SERVICE_` prefix is case-sensitive, the key after it is not. A key whose first part is a
number applies to that container port only (`SERVICE_80_NAME`). Lookup precedence, highest
first: per-port label, per-port env, per-port Swarm service label, generic label, generic env,
generic Swarm service label. A Swarm task's service labels (`docker service create --label`)
are the third source: below the container's own keys at equal specificity. gliderlabs reads
labels in map order, so its result can vary; this one is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeGuard

from registrator.core.flags import parse_flag
from registrator.core.model import Container

PREFIX = "SERVICE_"
_PER_PORT = re.compile(r"^(\d+)_(.+)$")


@dataclass(frozen=True, slots=True)
class Declared:
    """One `SERVICE_*` value and where it came from, for log lines that name the source."""

    #: the key as the container spells it, e.g. "SERVICE_80_NAME"; a Swarm service label
    #: names its service too ("SERVICE_TAGS on Swarm service web"), for log lines
    source: str
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
    """Collect the container's declarations; each source is read after the ones it beats."""
    generic: dict[str, Declared] = {}
    per_port: dict[int, dict[str, Declared]] = {}
    for key, declared in _lowest_first(container):
        match = _PER_PORT.match(key)
        if match:
            per_port.setdefault(int(match.group(1)), {})[match.group(2)] = declared
        else:
            generic[key] = declared
    return Declarations(generic=generic, per_port=per_port)


def _lowest_first(container: Container) -> Iterator[tuple[str, Declared]]:
    """(KEY without prefix, declared): Swarm service labels, then env, then labels."""
    task = container.swarm
    if task is not None and task.service_labels:
        yield from _read(task.service_labels, f" on Swarm service {task.service_name}")
    yield from _read(container.env)
    yield from _read(container.labels)


def _read(source: Mapping[str, str], origin: str = "") -> Iterator[tuple[str, Declared]]:
    for raw_key in sorted(source):
        if raw_key.startswith(PREFIX) and len(raw_key) > len(PREFIX):
            declared = Declared(source=f"{raw_key}{origin}", value=source[raw_key])
            yield raw_key[len(PREFIX) :].upper(), declared


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
