"""Faults with the real things: Docker restarted, Consul down or wiped, registrator killed.

Each test starts what it breaks (its own Consul agent, its own registrator, its own dockerd)
and leaves the machine as it found it: the machine's dockerd is never restarted.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import ConsulDevAgent, PrivateDockerd, wait_until
from tests.integration.support import Containers, StartRegistrator


@pytest.fixture
def own_consul(tmp_path: Path) -> Iterator[ConsulDevAgent]:
    """An agent of this test's own, so stopping or wiping it disturbs no other test."""
    agent = ConsulDevAgent(tmp_path / "consul").start()
    yield agent
    agent.stop()


def _owned_ids(consul: ConsulDevAgent, identity: str, containers: Containers) -> set[str]:
    """This identity's services for this test's containers (removed ones included).

    Registrator sees every container on the host; other suites may run containers of their
    own at the same time, so only services of this test's containers are compared.
    """
    return {sid for sid in consul.services(owner=identity) if sid.split(":")[1] in containers.names}


def _expected(containers: Containers, identity: str, running: list[str]) -> set[str]:
    return {f"{identity}:{containers.name(c)}:80" for c in running}


def test_consul_down_then_back_empty_on_the_same_port_is_fully_restored(
    own_consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(own_consul.uri, "--hostname", identity, "--agent-check-interval", "1")
    before = containers.run(ports={80: 0})
    wait_until(lambda: _owned_ids(own_consul, identity, containers), what="first registration")

    own_consul.stop()
    during = containers.run(ports={80: 0})  # its registration fails while the agent is down
    reg.wait_for_log("reconcile.failed", timeout=60)
    own_consul.start(http_port=own_consul.http_port)  # a fresh agent: empty data directory

    expected = _expected(containers, identity, [before, during])
    wait_until(
        lambda: _owned_ids(own_consul, identity, containers) == expected,
        timeout=20,
        what="all services restored",
    )
    assert reg.alive


def test_consul_emptied_while_running_is_repaired_by_the_agent_check(
    own_consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    start_registrator(own_consul.uri, "--hostname", identity, "--agent-check-interval", "0.5")
    web = containers.run(ports={80: 0})
    (service_id,) = _expected(containers, identity, [web])
    wait_until(lambda: service_id in own_consul.services(), what="registered")

    own_consul.request("PUT", f"/v1/agent/service/deregister/{service_id}")
    own_consul.request(
        "PUT", "/v1/agent/service/register", {"ID": "by-hand", "Name": "by-hand", "Port": 1}
    )

    wait_until(lambda: service_id in own_consul.services(), what="repaired")
    assert "by-hand" in own_consul.services()


def test_kill_9_then_changes_then_restart_leaves_exactly_the_running_ones(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    first = start_registrator(consul.uri, "--hostname", identity)
    gone, stays = containers.run(ports={80: 0}), containers.run(ports={80: 0})
    wait_until(lambda: len(_owned_ids(consul, identity, containers)) == 2, what="both registered")
    assert first.process is not None
    first.process.kill()
    first.process.wait()

    containers.api.remove_container(gone, force=True)
    new = containers.run(ports={80: 0})
    expected = _expected(containers, identity, [stays, new])
    for _ in range(3):  # restarts never duplicate anything
        again = start_registrator(consul.uri, "--hostname", identity)
        wait_until(lambda: _owned_ids(consul, identity, containers) == expected, what="exact set")
        assert again.process is not None
        again.process.send_signal(signal.SIGKILL)
        again.process.wait()
    assert len(_owned_ids(consul, identity, containers)) == 2


def test_dozens_started_and_removed_concurrently_leave_exactly_the_running_ones(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(consul.uri, "--hostname", identity, "--resync-interval", "0.5")
    reg.wait_for_log("docker.events.subscribed")
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = list(pool.map(lambda _: containers.run(ports={80: 0}), range(40)))
        removed, kept = started[:25], started[25:]
        extra = pool.submit(lambda: [containers.run(ports={80: 0}) for _ in range(5)])
        list(pool.map(lambda c: containers.api.remove_container(c, force=True), removed))
        kept += extra.result()

    expected = _expected(containers, identity, kept)
    wait_until(
        lambda: _owned_ids(consul, identity, containers) == expected,
        timeout=30,
        what="exactly the running containers",
    )


def test_two_identities_on_one_agent_never_touch_each_other(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    web = containers.run(ports={80: 0})
    a = start_registrator(consul.uri, "--hostname", f"{identity}-a", "--resync-interval", "0.3")
    b = start_registrator(consul.uri, "--hostname", f"{identity}-b", "--deregister-on-exit")
    wait_until(
        lambda: (
            _owned_ids(consul, f"{identity}-a", containers)
            and _owned_ids(consul, f"{identity}-b", containers)
        ),
        what="both identities registered",
    )

    b.stop()
    assert not _owned_ids(consul, f"{identity}-b", containers)
    assert _owned_ids(consul, f"{identity}-a", containers) == {
        f"{identity}-a:{containers.name(web)}:80"
    }
    resyncs = a.log.count("registrator.started")
    assert resyncs == 1
    assert a.alive


def test_docker_restart_is_survived_and_the_result_is_exact(
    consul: ConsulDevAgent,
    private_dockerd: PrivateDockerd,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    containers = Containers(private_dockerd.api)
    network = private_dockerd.network()
    reg = start_registrator(
        consul.uri, "--hostname", identity, env={"DOCKER_HOST": private_dockerd.host}
    )
    plain = containers.run(ports={80: 0}, network_mode=network)
    always = containers.run(ports={80: 0}, network_mode=network, restart_policy={"Name": "always"})
    wait_until(
        lambda: len(_owned_ids(consul, identity, containers)) == 2,
        what="registered before",
        timeout=30,
    )

    private_dockerd.restart()
    api = containers.api
    wait_until(
        lambda: api.inspect_container(always)["State"]["Running"],
        timeout=30,
        what="restart-always container back",
    )
    after = containers.run(ports={80: 0}, network_mode=network)

    expected = _expected(containers, identity, [always, after])
    wait_until(
        lambda: _owned_ids(consul, identity, containers) == expected,
        timeout=30,
        what="exactly the running containers after the restart",
    )
    port = containers.host_port(always)
    assert consul.services()[f"{identity}:{containers.name(always)}:80"]["Port"] == port
    assert not api.inspect_container(plain)["State"]["Running"]
    assert reg.alive
    assert "docker.events.reconnected" in reg.log
