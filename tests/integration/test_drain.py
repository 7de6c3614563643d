"""Drain before stop, against the real daemon, the real agent and a real load balancer.

The proof is a rolling deploy behind HAProxy, which finds its servers in Consul DNS: with
`--drain maintenance` no request fails, with `--drain off` some do. The other tests pin down
which signals drain, that a drain never outlives its container's stop timeout by much, and
that a burst of stops is drained before any of the containers dies.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness import ConsulDevAgent, RegistratorProcess, wait_until
from registrator.core.drain import DRAINING
from tests.integration.balancer import Client, HAProxy
from tests.integration.support import Containers, StartRegistrator, registered

#: Published on loopback only: these tests read Consul, not the service.
LOOPBACK: dict[int | str, Any] = {80: ("127.0.0.1",)}
#: A well-behaved application: on SIGTERM it keeps serving for 3 s, then exits.
GRACEFUL = [
    "sh",
    "-c",
    "httpd -f -p 80 -h /www & pid=$!; trap 'sleep 3; kill $pid; exit 0' TERM; wait $pid",
]
#: httpd as PID 1 has no handler for SIGTERM: `docker stop` kills it after 3 s.
TERM_IGNORED = {"stop_timeout": 3}


def started(
    start: StartRegistrator, consul: ConsulDevAgent, identity: str, *args: str
) -> RegistratorProcess:
    reg = start(consul.uri, "--hostname", identity, *args)
    reg.wait_for_log("docker.events.subscribed")
    return reg


def maintenance(consul: ConsulDevAgent, service_id: str) -> str | None:
    """The service's maintenance reason, None when it is not in maintenance."""
    check = (consul.get("/v1/agent/checks") or {}).get(f"_service_maintenance:{service_id}")
    return None if check is None else str(check["Notes"])


def service_of(containers: Containers, identity: str, container: str) -> str:
    return f"{identity}:{containers.name(container)}:80"


def processed(
    reg: RegistratorProcess,
    consul: ConsulDevAgent,
    containers: Containers,
    identity: str,
    *watched: str,
) -> None:
    """Every Docker event so far about the `watched` containers has been handled.

    The watcher thread reads events in order, so once a container started now is registered,
    it has read every earlier one: each was either dropped there (a signal that drains
    nothing) or handed to its container's lane, which logs `engine.event`. A lane runs on its
    own thread, so for each event handed over, wait for the `reconcile.done` line of a batch
    naming that container after it.
    """
    marker = containers.run(ports=LOOPBACK)
    registered(consul, service_of(containers, identity, marker))

    def handled() -> bool:
        lines = reg.log.splitlines()
        for container in (c[:12] for c in watched):
            handed = [n for n, ln in enumerate(lines) if "engine.event" in ln and container in ln]
            done = [n for n, ln in enumerate(lines) if "reconcile.done" in ln and container in ln]
            if handed and not (done and done[-1] > handed[-1]):
                return False
        return True

    wait_until(handled, timeout=30, what=f"the events of {watched} handled")


@contextmanager
def stopping(containers: Containers, container: str) -> Iterator[None]:
    """`docker stop` in the background, for the length of the block and until it returns."""
    stopper = threading.Thread(target=containers.api.stop, args=(container,))
    stopper.start()
    try:
        yield
    finally:
        stopper.join(timeout=30)


def running(containers: Containers, container: str) -> bool:
    return bool(containers.inspect(container)["State"]["Running"])


def test_only_the_stop_signal_drains_and_docker_stop_drains_before_the_death(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = started(start_registrator, consul, identity)
    term = containers.run(ports=LOOPBACK)  # httpd as PID 1: no default action for any signal
    quits = containers.run(ports=LOOPBACK, create={"stop_signal": "SIGQUIT", "stop_timeout": 5})
    ids = {c: service_of(containers, identity, c) for c in (term, quits)}
    registered(consul, *ids.values())

    containers.api.kill(term, signal="SIGHUP")
    containers.api.kill(term, signal="SIGUSR1")
    containers.api.kill(quits, signal="SIGTERM")
    processed(reg, consul, containers, identity, term, quits)
    assert [maintenance(consul, i) for i in ids.values()] == [None, None]
    assert "container.draining" not in reg.log

    with stopping(containers, quits):
        wait_until(lambda: maintenance(consul, ids[quits]) == DRAINING, what="drained")
        assert running(containers, quits)
    wait_until(lambda: ids[quits] not in consul.services(), what="deregistered at die")
    assert f"container.draining container={containers.name(quits)} signal=SIGQUIT" in reg.log
    assert maintenance(consul, ids[term]) is None


def test_drain_deregister_removes_the_services_at_the_stop_signal(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, consul, identity, "--drain", "deregister")
    web = containers.run(ports=LOOPBACK, create={"stop_timeout": 5})
    service_id = service_of(containers, identity, web)
    registered(consul, service_id)

    with stopping(containers, web):
        wait_until(lambda: service_id not in consul.services(), what="deregistered at the signal")
        assert running(containers, web)


def test_a_stop_signal_without_a_death_is_lifted_after_the_stop_timeout(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = started(start_registrator, consul, identity)
    web = containers.run(ports=LOOPBACK, create={"stop_timeout": 1})  # carries on after TERM
    service_id = service_of(containers, identity, web)
    registered(consul, service_id)

    containers.api.kill(web, signal="SIGTERM")  # what docker stop sends; no SIGKILL follows
    wait_until(lambda: maintenance(consul, service_id) == DRAINING, what="drained")
    reg.wait_for_log(f"container.drain_lifted container={containers.name(web)} after=6", timeout=20)
    wait_until(lambda: maintenance(consul, service_id) is None, what="drain lifted")

    containers.api.kill(web, signal="SIGTERM")
    wait_until(lambda: maintenance(consul, service_id) == DRAINING, what="drained again")


def test_a_restarted_registrator_sees_a_running_container_and_the_next_stop_drains_it(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    first = started(start_registrator, consul, identity)
    web = containers.run(ports=LOOPBACK, create={"stop_timeout": 60})
    service_id = service_of(containers, identity, web)
    registered(consul, service_id)
    containers.api.kill(web, signal="SIGTERM")
    wait_until(lambda: maintenance(consul, service_id) == DRAINING, what="drained")

    first.stop()
    started(start_registrator, consul, identity)
    wait_until(lambda: maintenance(consul, service_id) is None, what="running again")

    containers.api.kill(web, signal="SIGTERM")
    wait_until(lambda: maintenance(consul, service_id) == DRAINING, what="drained again")


def test_twenty_containers_stopped_at_once_are_all_drained_before_any_dies(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = started(start_registrator, consul, identity)
    with ThreadPoolExecutor(max_workers=20) as pool:
        many = list(
            pool.map(lambda _: containers.run(ports=LOOPBACK, create=TERM_IGNORED), range(20))
        )
        ids = [service_of(containers, identity, c) for c in many]
        registered(consul, *ids)

        list(pool.map(containers.api.stop, many))  # all at once; each dies 3 s later
    wait_until(lambda: not set(ids) & set(consul.services()), timeout=30, what="all deregistered")

    log = reg.log
    drained = [log.find(f"service.maintenance service={i} ") for i in ids]
    died = [log.find(f"engine.event happened=exited container={c[:12]}") for c in many]
    assert -1 not in drained, "every service drained"
    assert -1 not in died, "every death seen"
    assert max(drained) < min(died), "the last drain was written before the first death"


def passing(consul: ConsulDevAgent, service: str) -> set[tuple[str, int]]:
    entries = consul.get(f"/v1/health/service/{service}?passing") or []
    return {(e["Service"]["Address"], e["Service"]["Port"]) for e in entries}


@pytest.mark.parametrize("drain", ["maintenance", "off"])
def test_a_rolling_deploy_behind_haproxy_fails_no_request_when_drained(
    drain: str,
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    *,
    identity: str,
    tmp_path: Path,
) -> None:
    """Three backends replaced one at a time, each replacement up before the next stop.

    The backends publish their port on the address of a bridge network of the test's own:
    HAProxy on the host reaches them there, and nothing answers once a backend is gone (on
    127.0.0.1 Docker's userland proxy would accept the connection). Not on docker0: there the
    bridge's MAC address follows whichever container comes and goes on this shared machine,
    which now and then stalls traffic to every container on it for seconds.
    """
    started(start_registrator, consul, identity, "--drain", drain)
    service, network = f"web-{uuid.uuid4().hex[:8]}", containers.network()
    gateway = containers.api.inspect_network(network)["IPAM"]["Config"][0]["Gateway"]

    def backend() -> tuple[str, tuple[str, int]]:
        container = containers.run(
            GRACEFUL,
            env={"SERVICE_NAME": service},
            ports={80: (gateway,)},
            network_mode=network,
            create={"stop_timeout": 10},
        )
        return container, (gateway, containers.host_port(container))

    live = dict(backend() for _ in range(3))
    wait_until(lambda: passing(consul, service) == set(live.values()), what="3 backends passing")
    balancer = HAProxy(tmp_path / "haproxy", consul.dns_port, service).start()
    try:
        wait_until(lambda: balancer.servers() == set(live.values()), what="haproxy found them")
        client = Client(balancer.port).start()
        try:
            _roll(containers, balancer, client, live, backend)
        finally:
            client.stop()
    finally:
        balancer.stop()

    print(
        f"--drain {drain}: {client.sent} requests, {client.failed} failed {dict(client.failures)}"
    )
    if drain == "maintenance":
        assert dict(client.failures) == {}, "\n".join(balancer.failed_requests())
    else:
        assert client.failed > 0, "the problem the drain solves did not show"


def _roll(
    containers: Containers,
    balancer: HAProxy,
    client: Client,
    live: dict[str, tuple[str, int]],
    backend: Callable[[], tuple[str, tuple[str, int]]],
) -> None:
    """Replace each backend: start the new one, wait until HAProxy sends to it, stop the old one
    (`docker stop`, in the background: it returns only after Docker's clean-up) and wait until
    HAProxy no longer sends to it. The client runs until every old one has stopped."""
    wait_until(lambda: client.ok >= 100, what="traffic through haproxy")
    stoppers = []
    for old in list(live):
        new, where = backend()
        live[new] = where
        wait_until(lambda: where in balancer.servers(), what="haproxy sends to the replacement")  # noqa: B023
        gone = live.pop(old)
        stoppers.append(threading.Thread(target=containers.api.stop, args=(old,)))
        stoppers[-1].start()
        wait_until(lambda: gone not in balancer.servers(), what="haproxy dropped the old one")  # noqa: B023
    for stopper in stoppers:
        stopper.join(timeout=30)
    settled = client.sent
    wait_until(lambda: client.sent >= settled + 100, what="traffic after the last replacement")
