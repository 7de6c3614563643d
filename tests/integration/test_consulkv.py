"""consulkv:// against a real Consul 1.8 agent's KV store and the real Docker.

The module's agent allows session TTLs from 1 s (`session_ttl_min`), so expiry is tested in
seconds; each test writes under a key prefix of its own. Keys are compared for this test's
containers only.
"""

from __future__ import annotations

import base64
import urllib.error
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness import ConsulDevAgent, wait_until
from tests.integration.support import Containers, StartRegistrator, run_registrator

#: seconds any condition may take: a loaded machine (other suites running) is slow, never wrong
WAIT = 60
SHORT_SESSIONS = {"session_ttl_min": "1s"}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulDevAgent]:
    consul = ConsulDevAgent(tmp_path_factory.mktemp("consulkv"), SHORT_SESSIONS).start()
    yield consul
    consul.stop()


@pytest.fixture
def own_agent(tmp_path: Path) -> Iterator[ConsulDevAgent]:
    """An agent of this test's own, so stopping or wiping it disturbs no other test."""
    consul = ConsulDevAgent(tmp_path / "consul", SHORT_SESSIONS).start()
    yield consul
    consul.stop()


def _kv(agent: ConsulDevAgent, prefix: str) -> dict[str, dict[str, Any]]:
    """Key -> value, session and modify index, for every key under `prefix`/."""
    try:
        found = agent.get(f"/v1/kv/{prefix}/?recurse=true") or []
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {}
        raise
    return {
        raw["Key"]: {
            "value": base64.b64decode(raw.get("Value") or "").decode(),
            "session": raw.get("Session"),
            "modify": raw["ModifyIndex"],
        }
        for raw in found
    }


def _ours(agent: ConsulDevAgent, prefix: str, containers: Containers) -> dict[str, dict[str, Any]]:
    return {
        key: kv
        for key, kv in _kv(agent, prefix).items()
        if [*key.rsplit("/", 1)[-1].split(":"), ""][1] in containers.names
    }


def _uri(agent: ConsulDevAgent, prefix: str) -> str:
    return f"consulkv://{agent.address}/{prefix}"


def _web(containers: Containers, **env: str) -> str:
    return containers.run(ports={80: 0}, env={"SERVICE_NAME": "web", **env})


def _key(prefix: str, identity: str, containers: Containers, container: str) -> str:
    return f"{prefix}/web/{identity}:{containers.name(container)}:80"


def test_register_and_deregister_with_gliderlabs_layout_held_by_a_session(
    agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"services-{identity}"
    start_registrator(_uri(agent, prefix), "--hostname", identity)
    first, second = _web(containers), _web(containers)
    keys = {_key(prefix, identity, containers, c) for c in (first, second)}
    wait_until(
        lambda: set(_ours(agent, prefix, containers)) == keys, what="both keys", timeout=WAIT
    )

    found = _ours(agent, prefix, containers)
    port = containers.host_port(first)
    assert found[_key(prefix, identity, containers, first)]["value"] == f"127.0.0.1:{port}"
    (session,) = {kv["session"] for kv in found.values()}
    info = agent.get(f"/v1/session/info/{session}")[0]
    assert info["Name"] == f"registrator {identity} {prefix}"
    assert (info["TTL"], info["Behavior"]) == ("30s", "delete")

    containers.api.remove_container(first, force=True)
    wait_until(
        lambda: len(_ours(agent, prefix, containers)) == 1, what="first key removed", timeout=WAIT
    )


def test_a_foreign_key_under_the_prefix_is_never_touched(
    agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"services-{identity}"
    agent.request("PUT", f"/v1/kv/{prefix}/web/by-hand", "10.0.0.1:80")
    reg = start_registrator(_uri(agent, prefix), "--hostname", identity, "--resync-interval", "0.5")
    web = _web(containers)
    wait_until(lambda: _ours(agent, prefix, containers), what="registered", timeout=WAIT)
    containers.api.remove_container(web, force=True)
    wait_until(lambda: not _ours(agent, prefix, containers), what="deregistered", timeout=WAIT)
    reg.stop()
    assert run_registrator("--resync", _uri(agent, prefix), "--hostname", identity).returncode == 0

    by_hand = _kv(agent, prefix)[f"{prefix}/web/by-hand"]
    assert (by_hand["value"], by_hand["session"]) == ('"10.0.0.1:80"', None)


def test_kill_9_leaves_keys_that_expire_with_the_session(
    agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"services-{identity}"
    reg = start_registrator(_uri(agent, prefix), "--hostname", identity, "--ttl", "1")
    _web(containers)
    wait_until(lambda: _ours(agent, prefix, containers), what="registered", timeout=WAIT)
    assert reg.process is not None
    reg.process.kill()
    reg.process.wait()
    # Consul invalidates a session between its TTL and twice that, on its own timer
    wait_until(lambda: not _ours(agent, prefix, containers), timeout=30, what="keys expired")


def test_restart_adopts_the_live_session_and_idle_resyncs_write_nothing(
    agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"services-{identity}"
    args = (_uri(agent, prefix), "--hostname", identity, "--resync-interval", "0.3")
    first = start_registrator(*args)
    _web(containers)
    wait_until(lambda: _ours(agent, prefix, containers), what="registered", timeout=WAIT)
    before = _ours(agent, prefix, containers)
    assert first.process is not None
    first.process.kill()
    first.process.wait()

    second = start_registrator(*args)
    second.wait_for_log("scope=full", timeout=WAIT)
    passes = second.log.count("scope=full")
    wait_until(
        lambda: second.log.count("scope=full") >= passes + 3, timeout=60, what="idle resyncs"
    )
    assert _ours(agent, prefix, containers) == before  # same session, same modify index


def test_agent_down_then_back_empty_then_everything_is_restored(
    own_agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"services-{identity}"
    reg = start_registrator(_uri(own_agent, prefix), "--hostname", identity, "--ttl", "2")
    web = _web(containers)
    wait_until(lambda: _ours(own_agent, prefix, containers), what="registered", timeout=WAIT)

    own_agent.stop()
    reg.wait_for_log("registry.heartbeat_failed", timeout=WAIT)
    other = _web(containers)
    own_agent.start(http_port=own_agent.http_port)  # a fresh agent: no session, no key
    both = {_key(prefix, identity, containers, c) for c in (web, other)}
    wait_until(
        lambda: set(_ours(own_agent, prefix, containers)) == both, what="restored", timeout=WAIT
    )
    reg.wait_for_log("registry.lease_lost", timeout=WAIT)
    assert reg.alive


def test_bad_input_costs_only_its_own_service_and_paused_ones_are_left_out(
    agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"services-{identity}"
    reg = start_registrator(_uri(agent, prefix), "--hostname", identity)
    bad = containers.run(ports={80: 0}, env={"SERVICE_ID": "a/b"})
    good = _web(containers)
    key = _key(prefix, identity, containers, good)
    wait_until(
        lambda: key in _ours(agent, prefix, containers), what="good one registered", timeout=WAIT
    )
    reg.wait_for_log("SERVICE_ID", timeout=WAIT)
    assert sum("a/b" in line for line in reg.log.splitlines()) == 1
    assert containers.name(bad) in reg.log
    containers.api.pause(good)
    wait_until(
        lambda: key not in _ours(agent, prefix, containers), what="paused: gone", timeout=WAIT
    )
    containers.api.unpause(good)
    wait_until(lambda: key in _ours(agent, prefix, containers), what="unpaused: back", timeout=WAIT)


def test_a_hundred_containers_at_once(
    agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    prefix = f"services-{identity}"
    reg = start_registrator(_uri(agent, prefix), "--hostname", identity, "--internal")
    reg.wait_for_log("docker.events.subscribed", timeout=WAIT)
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = list(
            pool.map(lambda _: containers.run(expose=[80], env={"SERVICE_NAME": "web"}), range(100))
        )
    wait_until(lambda: len(_ours(agent, prefix, containers)) == 100, timeout=60, what="100 keys")
    assert len({kv["session"] for kv in _ours(agent, prefix, containers).values()}) == 1
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda c: containers.api.remove_container(c, force=True), started))
    wait_until(lambda: not _ours(agent, prefix, containers), timeout=60, what="all removed")
