"""The Consul adapter against a real agent: asking for a few services by ID, its node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import ConsulDevAgent
from registrator.core.model import ServiceID
from registrator.registries.consul.agent import MAX_FILTERED_IDS, ConsulAgent
from registrator.registries.consul.target import ConsulTarget


@pytest.fixture
def agent(consul: ConsulDevAgent) -> Iterator[ConsulAgent]:
    client = ConsulAgent(ConsulTarget(base_url=f"http://{consul.address}"))
    yield client
    client.close()


def _register(consul: ConsulDevAgent, identity: str) -> list[str]:
    """Owned services of every kind the filter must carry: checks, maintenance, odd IDs."""
    meta = {"registrator_host": identity}
    ids = [f"{identity}:web-{n}:80" for n in range(MAX_FILTERED_IDS + 2)]
    ids += [f'{identity}:quote"d:80', f"{identity}:back\\slash:80"]
    for service_id in ids:
        body = {"ID": service_id, "Name": "web", "Port": 80, "Meta": meta}
        consul.request("PUT", "/v1/agent/service/register", body)
    check = {"ID": f"{ids[0]}:ttl", "Name": "ttl", "TTL": "30s", "ServiceID": ids[0]}
    consul.request("PUT", "/v1/agent/check/register", check)
    consul.request("PUT", f"/v1/agent/service/maintenance/{ids[1]}?enable=true&reason=x")
    consul.request("PUT", "/v1/agent/service/register", {"ID": f"{identity}-other", "Name": "o"})
    return ids


def test_services_by_id_are_what_the_whole_list_says_of_them(
    consul: ConsulDevAgent, agent: ConsulAgent, identity: str
) -> None:
    ids = [ServiceID(i) for i in _register(consul, identity)]
    everything = agent.services(owner=identity)
    wanted_sets = [
        ids[:1],
        ids[:2],
        ids[:MAX_FILTERED_IDS],  # the largest filter
        ids[: MAX_FILTERED_IDS + 1],  # too many for a filter: everything, then narrowed
        ids[-2:],  # IDs a filter string cannot carry
        [*ids[:1], ServiceID(f"{identity}:missing:80"), ServiceID(f"{identity}-other")],
    ]

    for wanted in wanted_sets:
        expected = {i: s for i, s in everything.items() if i in wanted}
        assert agent.services(owner=identity, ids=wanted) == expected
    assert everything[ids[0]].checks
    assert everything[ids[1]].maintenance
    assert agent.services(owner=identity, ids=[]) == {}
    bare = agent.services(owner=identity, ids=ids[:2], with_checks=False)
    assert set(bare) == set(ids[:2])
    assert all(not s.checks and not s.maintenance for s in bare.values())
    assert set(everything) == set(ids)


def test_the_node_is_the_agents_own_node_name(consul: ConsulDevAgent, agent: ConsulAgent) -> None:
    assert agent.node() == consul.get("/v1/agent/self")["Config"]["NodeName"]
    assert agent.node().startswith("registrator-test-")
