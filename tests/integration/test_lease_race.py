"""The first writes of a key-value registry, in parallel as a full pass makes them, hang on one
lease (etcd) or session (Consul KV): writes that each found none must not each make one, since
only the last is recorded and kept alive, and the keys on the others would expire."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import ConsulDevAgent
from harness.etcd import EtcdServer
from registrator.core.model import Service, ServiceID
from registrator.registries.open import open_registry

WRITERS = 8


@pytest.fixture(params=["etcd", "consulkv"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "etcd":
        etcd = EtcdServer(tmp_path / "etcd").start()
        yield etcd.uri("/services")
        etcd.stop()
    else:
        agent = ConsulDevAgent(tmp_path / "consul").start()
        yield f"consulkv://{agent.address}/services"
        agent.stop()


def _service(n: int) -> Service:
    meta = (("registrator_host", "race"),)
    return Service(ServiceID(f"race:web-{n}:80"), "web", "192.0.2.1", 8000 + n, meta=meta)


def test_parallel_first_writes_share_one_lease(uri: str) -> None:
    opened = open_registry(uri, ttl=30)
    registry = opened.registry
    registry.services(owner="race")  # adopt: nothing recorded yet
    start = threading.Barrier(WRITERS)

    def write(n: int) -> None:
        start.wait(timeout=10)
        registry.register(_service(n))

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(write, range(WRITERS)))

    try:
        # only keys on the lease (session) the registry holds and keeps alive count as its own
        assert set(registry.services(owner="race")) == {_service(n).id for n in range(WRITERS)}
    finally:
        opened.close()
