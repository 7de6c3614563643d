"""etcd:// and skydns2:// against a real etcd 3.4 (Debian's etcd-server) and the real Docker.

Each test writes under a prefix of its own in the session's server (conftest); the ones that
stop or wipe etcd start their own. Keys are compared for this test's containers only
(registrator sees every container of this run).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness import wait_until
from harness.etcd import EtcdServer
from tests.integration.support import Containers, StartRegistrator, run_registrator

#: seconds any condition may take: a loaded machine (other suites running) is slow, never wrong
WAIT = 60


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A server of this test's own: stopping or wiping it disturbs no other test, and no
    other test's lease expires in it (which would move the revision)."""
    server = EtcdServer(tmp_path / "etcd").start()
    yield server
    server.stop()


def _ours(etcd: EtcdServer, prefix: str, containers: Containers) -> dict[str, dict[str, Any]]:
    """Keys under `prefix` of services of this test's containers."""
    return {
        key: kv
        for key, kv in etcd.keys(prefix + "/").items()
        if ([*key.rsplit("/", 1)[-1].split(":"), "", ""])[1] in containers.names
    }


def _key(prefix: str, identity: str, containers: Containers, container: str, name: str) -> str:
    return f"{prefix}/{name}/{identity}:{containers.name(container)}:80"


def _refreshed(etcd: EtcdServer, lease: int) -> bool:
    """True once the lease's remaining TTL went up: someone sent it a keepalive."""
    seen = _LOWEST.setdefault(lease, [etcd.time_to_live(lease)])
    ttl = etcd.time_to_live(lease)
    if ttl > min(seen):
        return True
    seen.append(ttl)
    return False


_LOWEST: dict[int, list[int]] = {}


def _web(containers: Containers, **env: str) -> str:
    return containers.run(ports={80: 0}, env={"SERVICE_NAME": "web", **env})


def test_register_and_deregister_with_gliderlabs_layout_on_one_lease(
    etcd: EtcdServer, containers: Containers, start_registrator: StartRegistrator, identity: str
) -> None:
    prefix = f"/services-{identity}"
    start_registrator(etcd.uri(prefix), "--hostname", identity, "--ip", "192.0.2.7")
    first, second = _web(containers), _web(containers)
    keys = {_key(prefix, identity, containers, c, "web") for c in (first, second)}
    wait_until(lambda: set(_ours(etcd, prefix, containers)) == keys, what="both keys", timeout=WAIT)

    found = _ours(etcd, prefix, containers)
    port = containers.host_port(first)
    assert found[_key(prefix, identity, containers, first, "web")]["value"] == f"192.0.2.7:{port}"
    leases = {kv["lease"] for kv in found.values()}
    assert len(leases) == 1
    assert 0 < etcd.time_to_live(leases.pop()) <= 30
    record = etcd.keys(f"registrator/owners{prefix}/{identity}")
    assert json.loads(next(iter(record.values()))["value"])["prefix"] == prefix

    containers.api.remove_container(first, force=True)
    wait_until(
        lambda: len(_ours(etcd, prefix, containers)) == 1, what="first key removed", timeout=WAIT
    )


def test_a_foreign_key_under_the_prefix_is_never_touched(
    etcd: EtcdServer,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"/services-{identity}"
    foreign_lease = etcd.grant(300)
    etcd.put(f"{prefix}/web/by-hand", "10.0.0.1:80")
    etcd.put(f"{prefix}/web/{identity}:someone-else:80", "10.0.0.2:80", lease=foreign_lease)
    reg = start_registrator(etcd.uri(prefix), "--hostname", identity, "--resync-interval", "0.5")
    web = _web(containers)
    wait_until(lambda: _ours(etcd, prefix, containers), what="registered", timeout=WAIT)
    containers.api.remove_container(web, force=True)
    wait_until(lambda: not _ours(etcd, prefix, containers), what="deregistered", timeout=WAIT)
    reg.stop()
    assert run_registrator("--resync", etcd.uri(prefix), "--hostname", identity).returncode == 0

    keys = etcd.keys(prefix + "/")
    assert keys[f"{prefix}/web/by-hand"] == {"value": "10.0.0.1:80", "lease": 0}
    assert keys[f"{prefix}/web/{identity}:someone-else:80"]["lease"] == foreign_lease


def test_kill_9_leaves_keys_that_expire_after_ttl(
    etcd: EtcdServer, containers: Containers, start_registrator: StartRegistrator, identity: str
) -> None:
    prefix = f"/services-{identity}"
    reg = start_registrator(etcd.uri(prefix), "--hostname", identity, "--ttl", "2")
    _web(containers)
    wait_until(lambda: _ours(etcd, prefix, containers), what="registered", timeout=WAIT)
    assert reg.process is not None
    reg.process.kill()
    reg.process.wait()

    wait_until(lambda: not _ours(etcd, prefix, containers), timeout=30, what="keys expired")
    assert not etcd.keys(f"registrator/owners{prefix}/")


def test_a_restarted_registrator_adopts_its_live_keys_without_a_write(
    own_etcd: EtcdServer, containers: Containers, start_registrator: StartRegistrator, identity: str
) -> None:
    prefix = f"/services-{identity}"
    args = (own_etcd.uri(prefix), "--hostname", identity)  # --ttl 30: time to restart
    first = start_registrator(*args)
    _web(containers)
    wait_until(lambda: _ours(own_etcd, prefix, containers), what="registered", timeout=WAIT)
    before = _ours(own_etcd, prefix, containers)
    assert first.process is not None
    first.process.kill()
    first.process.wait()
    revision = own_etcd.revision()

    second = start_registrator(*args)
    second.wait_for_log("scope=full", timeout=WAIT)
    lease = next(iter(before.values()))["lease"]
    wait_until(lambda: _refreshed(own_etcd, lease), timeout=WAIT, what="the old lease kept alive")
    assert _ours(own_etcd, prefix, containers) == before
    assert own_etcd.revision() == revision


def test_idle_resyncs_move_no_revision_and_dry_run_writes_nothing(
    own_etcd: EtcdServer,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"/services-{identity}"
    uri = own_etcd.uri(prefix)
    reg = start_registrator(uri, "--hostname", identity, "--resync-interval", "0.3")
    _web(containers)
    wait_until(lambda: _ours(own_etcd, prefix, containers), what="registered", timeout=WAIT)
    revision = own_etcd.revision()
    passes = reg.log.count("scope=full")
    wait_until(
        lambda: reg.log.count("scope=full") >= passes + 3, timeout=60, what="three idle resyncs"
    )
    assert own_etcd.revision() == revision

    once = run_registrator("--resync", uri, "--hostname", identity)
    assert once.returncode == 0, once.stderr
    assert own_etcd.revision() == revision
    reg.stop()  # keys stay until the lease expires; the dry run sees the new container alone
    _web(containers)
    dry = run_registrator("--resync", uri, "--hostname", identity, "--dry-run")
    assert dry.returncode == 0
    assert "would register" in dry.stdout
    assert own_etcd.revision() == revision


def test_etcd_down_longer_than_the_ttl_or_wiped_then_everything_is_restored(
    own_etcd: EtcdServer,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"/services-{identity}"
    reg = start_registrator(own_etcd.uri(prefix), "--hostname", identity, "--ttl", "2")
    web = _web(containers)
    wait_until(lambda: _ours(own_etcd, prefix, containers), what="registered", timeout=WAIT)

    own_etcd.kill()  # down, data kept: etcd gives live leases a fresh TTL when it starts again
    reg.wait_for_log("registry.heartbeat_failed", timeout=WAIT)
    other = _web(containers)  # registered once etcd answers again
    own_etcd.start(keep_data=True)
    both = {_key(prefix, identity, containers, c, "web") for c in (web, other)}
    wait_until(
        lambda: set(_ours(own_etcd, prefix, containers)) == both, what="both back", timeout=WAIT
    )

    own_etcd.stop()  # wiped: every lease and key gone
    own_etcd.start()
    wait_until(
        lambda: set(_ours(own_etcd, prefix, containers)) == both, what="restored", timeout=WAIT
    )
    reg.wait_for_log("registry.lease_lost", timeout=WAIT)
    assert reg.alive


def test_bad_input_costs_only_its_own_service_and_unhealthy_or_paused_ones_are_left_out(
    etcd: EtcdServer, containers: Containers, start_registrator: StartRegistrator, identity: str
) -> None:
    prefix = f"/services-{identity}"
    reg = start_registrator(etcd.uri(prefix), "--hostname", identity)
    bad = containers.run(ports={80: 0}, env={"SERVICE_NAME": "no/slashes here"})
    good = _web(containers)
    checked = containers.run(
        ports={80: 0},
        env={"SERVICE_NAME": "checked"},
        healthcheck={"test": ["CMD", "test", "-f", "/tmp/ok"], "interval": 300_000_000},
    )
    good_key = _key(prefix, identity, containers, good, "web")
    wait_until(
        lambda: good_key in _ours(etcd, prefix, containers),
        what="good one registered",
        timeout=WAIT,
    )
    reg.wait_for_log("no/slashes here", timeout=WAIT)
    assert sum("no/slashes here" in line for line in reg.log.splitlines()) == 1
    assert containers.name(bad) in reg.log

    checked_key = _key(prefix, identity, containers, checked, "checked")
    containers.exec(checked, "touch", "/tmp/ok")
    wait_until(
        lambda: checked_key in _ours(etcd, prefix, containers), what="healthy: held", timeout=WAIT
    )
    containers.exec(checked, "rm", "/tmp/ok")
    wait_until(
        lambda: checked_key not in _ours(etcd, prefix, containers),
        what="unhealthy: gone",
        timeout=WAIT,
    )
    containers.api.pause(good)
    wait_until(
        lambda: good_key not in _ours(etcd, prefix, containers), what="paused: gone", timeout=WAIT
    )
    containers.api.unpause(good)
    wait_until(
        lambda: good_key in _ours(etcd, prefix, containers), what="unpaused: back", timeout=WAIT
    )
    assert set(_ours(etcd, prefix, containers)) == {good_key}


def test_a_hundred_containers_at_once(
    etcd: EtcdServer, containers: Containers, start_registrator: StartRegistrator, identity: str
) -> None:
    prefix = f"/services-{identity}"
    reg = start_registrator(etcd.uri(prefix), "--hostname", identity, "--internal")
    reg.wait_for_log("docker.events.subscribed", timeout=WAIT)
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = list(
            pool.map(lambda _: containers.run(expose=[80], env={"SERVICE_NAME": "web"}), range(100))
        )
    wait_until(lambda: len(_ours(etcd, prefix, containers)) == 100, timeout=60, what="100 keys")
    assert len({kv["lease"] for kv in _ours(etcd, prefix, containers).values()}) == 1
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda c: containers.api.remove_container(c, force=True), started))
    wait_until(lambda: not _ours(etcd, prefix, containers), timeout=60, what="all removed")


def test_skydns2_writes_the_coredns_etcd_layout(
    etcd: EtcdServer, containers: Containers, start_registrator: StartRegistrator, identity: str
) -> None:
    domain = f"{identity}.example.local"
    prefix = "/skydns/local/example/" + identity
    start_registrator(
        etcd.uri(f"/{domain}", scheme="skydns2"), "--hostname", identity, "--ip", "192.0.2.9"
    )
    web = _web(containers)
    key = _key(prefix, identity, containers, web, "web")
    wait_until(lambda: key in _ours(etcd, prefix, containers), what="skydns key", timeout=WAIT)
    value = json.loads(_ours(etcd, prefix, containers)[key]["value"])
    assert value == {"host": "192.0.2.9", "port": containers.host_port(web)}
