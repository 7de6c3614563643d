"""Dead hosts against a real Consul 1.8.7 agent: the liveness adapter (sessions, locks, KV,
blocking queries, catalog writes) and the reaper loop, without the registrator process.

Three simulated hosts are catalog nodes with registrator's node meta and one service each;
each has a `Liveness` kept alive by the daemon's own heartbeat loop and a `Reaper` on a thread,
all through one counting proxy. A host "dies" when its heartbeat and reaper stop (what a
`kill -9` leaves behind: a session nobody renews). The end-to-end version, with registrator
processes on a 3-server cluster behind nginx, is test_catalog_reap.py.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from benchmarks.proxy import CountingProxy
from harness import ConsulDevAgent, wait_until
from registrator.registries.catalog.liveness import ALIVE_CHECK, Liveness, NodeLockTaken
from registrator.registries.catalog.node import node_body
from registrator.registries.consul.agent import ConsulAgent
from registrator.registries.consul.target import consul_target
from registrator.runtime.heartbeat import keep_alive
from registrator.runtime.reaping import Reaper
from tests.integration.support import Containers, StartRegistrator
from tests.integration.test_catalog import CATALOG_POLICY
from tests.integration.test_consul_access import acl_consul

TTL = 10
REAP_AFTER = 6  # a host here starts again in-process, in well under a second
pytestmark = pytest.mark.timeout(180)
__all__ = ["acl_consul"]  # a fixture of test_consul_access, used here too


@dataclass
class Host:
    """One simulated host: its node in the catalog, its liveness, heartbeat and reaper."""

    node: str
    proxy: CountingProxy
    prefix: str
    stop: threading.Event = field(default_factory=threading.Event)
    liveness: Liveness | None = None
    #: every client and thread it started, for the teardown
    apis: list[ConsulAgent] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Host:
        self.stop = threading.Event()
        api = ConsulAgent(consul_target(f"consul://{self.proxy.address}", {}))
        self.apis.append(api)
        self.liveness = Liveness(api, ttl=TTL, prefix=self.prefix)
        self.liveness.own(self.node)
        self.liveness.heartbeat()  # the daemon's first beat comes a third of the TTL later
        beats = (self.liveness.heartbeat, TTL / 3)
        kwargs: dict[str, Any] = {"stop": self.stop, "on_lost": lambda: None}
        reaper = Reaper(self.liveness, node=self.node, reap_after=REAP_AFTER, stop=self.stop)
        self.threads += [
            threading.Thread(target=keep_alive, args=beats, kwargs=kwargs, daemon=True),
            threading.Thread(target=reaper.run, daemon=True),
        ]
        for thread in self.threads[-2:]:
            thread.start()
        return self

    def kill(self) -> None:
        """Nothing renews the session any more, nothing watches: a dead host."""
        self.stop.set()


@pytest.fixture
def hosts(consul: ConsulDevAgent) -> Iterator[list[Host]]:
    run = uuid.uuid4().hex[:8]
    proxy = CountingProxy(consul.address, timeout=WAIT_LIMIT).start()
    made = [Host(f"lv-{run}-{k}", proxy, f"registrator-test/{run}/catalog") for k in (1, 2, 3)]
    for host in made:
        register(consul, host.node)
    yield made
    for host in made:
        host.kill()
        consul.request("PUT", "/v1/catalog/deregister", {"Node": host.node})
    consul.request("DELETE", f"/v1/kv/registrator-test/{run}?recurse")  # wakes every watch
    for host in made:
        for thread in host.threads:
            thread.join(timeout=30)
        for api in host.apis:
            api.close()
    proxy.stop()


WAIT_LIMIT = 400  # longer than the reaper's longest blocking query


def register(consul: ConsulDevAgent, node: str) -> None:
    service = {"ID": f"{node}:web:80", "Service": node, "Port": 80}
    consul.request(
        "PUT", "/v1/catalog/register", {**node_body(node, "10.9.9.9"), "Service": service}
    )


def alive_status(consul: ConsulDevAgent, node: str) -> str:
    checks = consul.get(f"/v1/health/node/{node}") or []
    return next((c["Status"] for c in checks if c["CheckID"] == ALIVE_CHECK), "")


def passing(consul: ConsulDevAgent, node: str) -> bool:
    return bool(consul.get(f"/v1/health/service/{node}?passing"))


def node_exists(consul: ConsulDevAgent, node: str) -> bool:
    return consul.get(f"/v1/catalog/node/{node}") is not None


def writes(proxy: CountingProxy, since: int, path: str) -> list[Any]:
    return [e for e in proxy.exchanges(since=since) if e.method == "PUT" and e.path == path]


def test_a_dead_host_is_marked_then_reaped_once(consul: ConsulDevAgent, hosts: list[Host]) -> None:
    """Its session runs out: its service leaves the passing answers, one live registrator
    marks it and, REAP_AFTER later, deregisters the node: one deregistration in all."""
    for host in hosts:
        host.start()
    wait_until(lambda: all(alive_status(consul, h.node) == "passing" for h in hosts), timeout=30)
    assert all(passing(consul, h.node) for h in hosts)
    mark = hosts[0].proxy.mark()
    dead = hosts[1]
    dead.kill()
    wait_until(lambda: alive_status(consul, dead.node) == "critical", timeout=3 * TTL + 10)
    assert not passing(consul, dead.node)
    assert passing(consul, hosts[0].node)
    assert passing(consul, hosts[2].node)
    wait_until(lambda: not node_exists(consul, dead.node), timeout=REAP_AFTER + 30)
    deregistered = writes(hosts[0].proxy, mark, "/v1/catalog/deregister")
    assert [json.loads(e.body) for e in deregistered] == [{"Node": dead.node}]
    assert all(node_exists(consul, h.node) for h in (hosts[0], hosts[2]))
    leftover = consul.get(f"/v1/kv/{dead.prefix}/?keys") or []
    assert not [k for k in leftover if k.endswith(dead.node)]


def test_a_host_back_before_the_reap_is_adopted(consul: ConsulDevAgent, hosts: list[Host]) -> None:
    """Back within REAP_AFTER: it takes its lock again, writes its node check passing (its
    one write, no service written) and the claim on it is dropped: nothing is reaped."""
    for host in hosts:
        host.start()
    back = hosts[2]
    wait_until(lambda: alive_status(consul, back.node) == "passing", timeout=30)
    back.kill()
    wait_until(lambda: alive_status(consul, back.node) == "critical", timeout=3 * TTL + 10)
    mark = back.proxy.mark()
    back.start()
    wait_until(lambda: passing(consul, back.node), timeout=15)
    claims = f"/v1/kv/{back.prefix}/reap/{back.node}"
    wait_until(lambda: not consul_has(consul, claims), timeout=15, what="the claim dropped")
    # no claim, a held lock: no reaper has anything left to reap (see core/dead_hosts.py)
    lock = consul.get(f"/v1/kv/{back.prefix}/nodes/{back.node}")
    assert back.liveness is not None
    assert lock[0]["Session"] == back.liveness.session
    assert node_exists(consul, back.node)
    assert passing(consul, back.node)
    assert writes(back.proxy, mark, "/v1/catalog/deregister") == []
    txns = [json.loads(e.body) for e in writes(back.proxy, mark, "/v1/txn")]
    assert not [op for ops in txns for op in ops if "Service" in op]
    checks = [op["Check"]["Check"] for ops in txns for op in ops if "Check" in op]
    assert [(c["Node"], c["Status"]) for c in checks] == [(back.node, "passing")]


def consul_has(consul: ConsulDevAgent, path: str) -> bool:
    try:
        return consul.get(path) is not None
    except OSError:  # urllib's HTTPError for a 404
        return False


def test_a_second_registrator_with_the_same_identity_is_refused(
    consul: ConsulDevAgent, hosts: list[Host]
) -> None:
    """The lock is taken by a session it cannot adopt (one of another TTL: with the same, the
    two are told apart from a restart by nothing): a clear error naming the key, and no
    session of its own left over."""
    first = hosts[0].start()
    assert first.liveness is not None
    api = ConsulAgent(consul_target(f"consul://{consul.address}", {}))
    hosts[0].apis.append(api)
    second = Liveness(api, ttl=TTL + 5, prefix=first.prefix)
    second.own(first.node)
    with pytest.raises(NodeLockTaken, match=f"nodes/{first.node} is held by another session"):
        second.heartbeat()
    sessions = consul.get(f"/v1/session/node/{first.node}") or []
    assert [s["ID"] for s in sessions] == [first.liveness.session]
    assert second.session == ""


#: what watching for dead hosts adds to catalog mode's policy (README, ACL)
LIVENESS_POLICY = (
    'key_prefix "registrator/catalog/" {{ policy = "write" }}\n'
    'session "{node}" {{ policy = "write" }}\n'
    'node_prefix "" {{ policy = "write" }}'
)


def test_a_token_without_the_liveness_rules_costs_one_line_and_nothing_else(
    acl_consul: ConsulDevAgent,
    identity: str,
    containers: Containers,
    start_registrator: StartRegistrator,
) -> None:
    """Catalog mode's own policy only: services register, and one line says what the liveness
    session needs (Consul filters the KV reads a token may not make: the watch sees no keys,
    so nothing else fails); with the documented rules added, its lock is taken."""
    args = (f"consul-catalog://{acl_consul.address}", "--hostname", identity, "--ip", "127.0.0.1")
    short = (*args, "--session-ttl", str(TTL))  # a beat every TTL/3: the second comes sooner
    web = containers.run(ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"
    catalog_only = CATALOG_POLICY.format(node=identity)
    weak = start_registrator(*short, env={"CONSUL_HTTP_TOKEN": token(acl_consul, catalog_only)})
    wait_until(
        lambda: (
            service_id in (acl_consul.get(f"/v1/catalog/node/{identity}") or {}).get("Services", {})
        ),
        what=service_id,
    )
    weak.wait_for_log("DEBUG registry.heartbeat_failed", timeout=30)  # beats on, quietly
    said = [line for line in weak.log.splitlines() if " WARNING " in line or " ERROR " in line]
    assert len(said) == 1
    assert "registry.heartbeat_failed" in said[0]
    assert "403" in said[0]
    assert f"session write on node '{identity}'" in said[0]
    weak.stop()

    rules = f"{catalog_only}\n{LIVENESS_POLICY.format(node=identity)}"
    start_registrator(*args, env={"CONSUL_HTTP_TOKEN": token(acl_consul, rules)})
    wait_until(lambda: alive_status(acl_consul, identity) == "passing", timeout=30)


def token(consul: ConsulDevAgent, rules: str) -> str:
    name = f"policy-{uuid.uuid4().hex[:8]}"
    consul.request("PUT", "/v1/acl/policy", {"Name": name, "Rules": rules})
    return str(consul.request("PUT", "/v1/acl/token", {"Policies": [{"Name": name}]})["SecretID"])
