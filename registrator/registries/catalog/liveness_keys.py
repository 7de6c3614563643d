"""The liveness keys as Consul lists them (`GET /v1/kv/<prefix>/?recurse`), read into the
dead-host decision's terms; the layout is described in `liveness.py`."""

from __future__ import annotations

import base64
import json
from typing import Any

from registrator.core.dead_hosts import Claim, Lock, Tree


def parse_tree(prefix: str, raw: list[dict[str, Any]]) -> tuple[Tree, tuple[tuple[str, str], ...]]:
    """The locks and claims under `prefix` as Consul lists them; keys that are neither, and
    claims whose value is no claim, as (key, value) for the caller to report."""
    locks: dict[str, Lock] = {}
    claims: dict[str, Claim] = {}
    bad: list[tuple[str, str]] = []
    for entry in raw:
        key = str(entry.get("Key", ""))
        kind, _, node = key[len(prefix) + 1 :].partition("/")
        index = int(entry.get("ModifyIndex") or 0)
        holder = str(entry.get("Session") or "")
        if kind == "nodes" and node:
            locks[node] = Lock(node, bool(holder), index)
        elif kind == "reap" and node:
            value = _decoded(entry.get("Value"))
            try:
                record = json.loads(value)
                claims[node] = Claim(
                    node, holder, int(record["dead_index"]), float(record["since"]), index
                )
            except (ValueError, KeyError, TypeError):
                bad.append((key, value[:100]))
        else:
            bad.append((key, _decoded(entry.get("Value"))[:100]))
    return Tree(locks, claims), tuple(bad)


def _decoded(value: Any) -> str:
    return base64.b64decode(value or "").decode(errors="replace")
