"""The catalog node a registrator owns in catalog mode, and how it is told from anyone else's.

With no Consul agent on the host, registrator registers a node of its own, named by its host
identity (`--hostname`) at `--ip`, and marks it the way consul-esm marks the external nodes it
watches (`external-node`, `external-probe`), plus `registrator_host`: the same key and value as
the ownership mark of its services. A node of that name without these marks is someone else's
and is never written.

The reaper (dead hosts) imports these names: one spelling for everyone who reads a node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registrator.core.model import OWNER_META_KEY

#: consul-esm's mark for a node no agent runs: its checks are someone else's to run
NODE_META_EXTERNAL = "external-node"
#: consul-esm's mark asking for the node's address to be probed (registrator probes itself)
NODE_META_PROBE = "external-probe"
#: the host identity of the registrator that owns the node (as in its services' Meta)
NODE_META_HOST = OWNER_META_KEY


def node_meta(host: str) -> dict[str, str]:
    """The NodeMeta that marks a node as registrator's, for host identity `host`."""
    return {NODE_META_EXTERNAL: "true", NODE_META_PROBE: "true", NODE_META_HOST: host}


def node_body(node: str, address: str) -> dict[str, Any]:
    """The node part of a catalog registration (`PUT /v1/catalog/register`, a txn's `Node`):
    the node is named by the host identity, which is also its `registrator_host`."""
    return {"Node": node, "Address": address, "NodeMeta": node_meta(node)}


def node_op(node: str, address: str) -> dict[str, Any]:
    """The same node as a `PUT /v1/txn` operation (a transaction spells NodeMeta `Meta`).
    Setting a node to what it already is changes nothing (not even its ModifyIndex), so
    every transaction registrator sends can carry it: a node removed meanwhile comes back."""
    body = node_body(node, address)
    body["Meta"] = body.pop("NodeMeta")
    return {"Node": {"Verb": "set", "Node": body}}


def is_registrators(node: Mapping[str, Any] | None, host: str | None = None) -> bool:
    """Whether a node as the catalog reports it (`Meta`, or `NodeMeta` in a registration)
    carries registrator's marks; with `host`, those of that host identity."""
    if not node:
        return False
    meta = node.get("Meta") or node.get("NodeMeta") or {}
    owner = meta.get(NODE_META_HOST)
    return meta.get(NODE_META_EXTERNAL) == "true" and owner is not None and host in {None, owner}
