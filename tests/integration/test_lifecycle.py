"""Container lifecycle against the real daemon and agent: pause, exits, removal, shutdown."""

from __future__ import annotations

import signal

from harness import ConsulDevAgent, wait_until
from tests.integration.support import Containers, StartRegistrator, run_registrator


def _in_maintenance(consul: ConsulDevAgent, service_id: str) -> bool:
    checks = consul.get("/v1/agent/checks") or {}
    return f"_service_maintenance:{service_id}" in checks


def test_pause_puts_the_service_in_maintenance_and_unpause_lifts_it(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    start_registrator(consul.uri, "--hostname", identity)
    web = containers.run(ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"
    wait_until(lambda: service_id in consul.services(), what="registered")

    containers.api.pause(web)
    wait_until(lambda: _in_maintenance(consul, service_id), what="maintenance on")
    assert service_id in consul.services()

    containers.api.unpause(web)
    wait_until(lambda: not _in_maintenance(consul, service_id), what="maintenance off")
    assert service_id in consul.services()


EXIT_ON_DEMAND = [
    "sh",
    "-c",
    "httpd -p 80 -h /www; while [ ! -f /tmp/code ]; do sleep 0.05; done; exit $(cat /tmp/code)",
]


def _exit_with(containers: Containers, container: str, code: int) -> None:
    exec_id = containers.api.exec_create(container, ["sh", "-c", f"echo {code} > /tmp/code"])
    containers.api.exec_start(exec_id)
    containers.api.wait(container, timeout=10)


def test_on_success_keeps_a_failed_container_until_it_is_removed(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(consul.uri, "--hostname", identity, "-deregister", "on-success")
    failing = containers.run(EXIT_ON_DEMAND, ports={80: 0})
    clean = containers.run(EXIT_ON_DEMAND, ports={80: 0})
    stopped = containers.run(ports={80: 0})
    ids = {c: f"{identity}:{containers.name(c)}:80" for c in (failing, clean, stopped)}
    wait_until(lambda: set(ids.values()) <= set(consul.services()), what="all registered")

    _exit_with(containers, clean, 0)
    containers.api.stop(stopped, timeout=0)  # SIGKILL: an exit by a signal
    wait_until(lambda: ids[clean] not in consul.services(), what="exit 0 deregistered")
    wait_until(lambda: ids[stopped] not in consul.services(), what="signal deregistered")
    _exit_with(containers, failing, 3)
    reg.wait_for_log(f"container.exited_kept container={containers.name(failing)}")
    assert ids[failing] in consul.services()

    containers.api.remove_container(failing)
    wait_until(lambda: ids[failing] not in consul.services(), what="removed after failing")


def test_die_then_destroy_and_rm_force_always_deregister(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(consul.uri, "--hostname", identity)
    stopped = containers.run(ports={80: 0})
    forced = containers.run(ports={80: 0})
    ids = [f"{identity}:{containers.name(c)}:80" for c in (stopped, forced)]
    wait_until(lambda: set(ids) <= set(consul.services()), what="registered")

    containers.api.stop(stopped, timeout=0)
    containers.api.remove_container(stopped)
    containers.api.remove_container(forced, force=True)

    wait_until(lambda: not set(ids) & set(consul.services()), what="both gone")
    assert "Traceback" not in reg.log
    assert reg.alive


def test_sigterm_stops_promptly_and_keeps_services_unless_asked(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    web = containers.run(ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"
    keeper = start_registrator(consul.uri, "--hostname", identity)
    wait_until(lambda: service_id in consul.services(), what="registered")

    assert keeper.stop(timeout=30) == 0
    assert service_id in consul.services()
    assert "Traceback" not in keeper.log

    releaser = start_registrator(consul.uri, "--hostname", identity, "--deregister-on-exit")
    releaser.wait_for_log("docker.events.subscribed")
    assert releaser.process is not None
    releaser.process.send_signal(signal.SIGINT)
    assert releaser.process.wait(timeout=30) == 0
    assert service_id not in consul.services()
    assert "Traceback" not in releaser.log


def test_resync_dry_run_prints_the_plan_and_writes_nothing(
    consul: ConsulDevAgent,
    containers: Containers,
    identity: str,
) -> None:
    web = containers.run(ports={80: 0})
    done = run_registrator("--resync", "--dry-run", "--hostname", identity, consul.uri)

    assert done.returncode == 0, done.stderr
    assert f"would register {identity}:{containers.name(web)}:80" in done.stdout
    assert "1 to register, 0 to deregister" in done.stdout
    assert not consul.services(owner=identity)
