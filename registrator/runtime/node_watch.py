"""Which registry node registrator talks to, and what it stops doing when that changes.

Services registered through a Consul agent belong to that agent's node, and the list a
reconcile compares with is that node's. Pointed at the agent of its own host, as it should be,
registrator always sees one node. Pointed at a load balancer, a server's address or a DNS name
over several agents, the node changes from call to call: a service missing from one node's
list is registered again on another (duplicates), and a cleanup would remove services on the
basis of a list that is not the one they are in.

Every full pass asks which node answers, twice in a row. A round-robin balancer gives two
answers in the very first pass, whatever the number of requests a pass makes (one question per
pass can fall on the same backend every time); a random one within a few passes; one that pins
a connection to a backend as soon as the connection is made again. The first node seen is the
one registrator works with. From the moment another one answers, nothing is deregistered for
the rest of the process's life (registrations go on, so containers stay discoverable), and one
error says so, once for each node newly seen: not on every pass.
"""

from __future__ import annotations

from loguru import logger

from registrator.runtime.observer import NULL_OBSERVER, Observer

AGENT_CHANGED = "registry.agent_changed"
HINT = (
    "the registry address reaches more than one agent (a load balancer, a server, a DNS name?); "
    "point registrator at the local Consul agent of its own host, or, for a host without an "
    "agent, use consul-catalog://HOST:PORT with --ip (a catalog node of its own); restart it; "
    "until then it deregisters nothing"
)


class NodeWatch:
    """The registry nodes seen so far: the first, and any other that answered since."""

    def __init__(self, *, observer: Observer = NULL_OBSERVER) -> None:
        self.first = ""
        self._others: set[str] = set()
        self._observer = observer

    @property
    def changed(self) -> bool:
        """Another node than the first has answered: cleanup is not safe any more."""
        return bool(self._others)

    def saw(self, node: str) -> None:
        """`node` answered ("" for a registry without nodes: nothing to compare)."""
        if not node or node == self.first or node in self._others:
            return
        if not self.first:
            self.first = node
            return
        self._others.add(node)
        logger.error(AGENT_CHANGED, first=self.first, now=node, hint=HINT)
        self._observer.failed(AGENT_CHANGED)
