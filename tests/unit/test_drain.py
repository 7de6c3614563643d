"""Drain before stop: the stop signal, the rule in the core, and the runtime that applies it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from harness import wait_until
from registrator.app.explain import ConsulView, report
from registrator.app.metrics import Metrics
from registrator.app.settings import Settings, derive_policy
from registrator.core.decide import PAUSED, decide
from registrator.core.drain import DRAINING, signal_name, signal_number
from registrator.core.events import ContainerEvent, Happened
from registrator.core.model import Container, ContainerID, ServiceID
from registrator.core.policy import DrainMode
from registrator.docker.events import event_from_docker
from registrator.docker.inspect import container_from_inspect
from registrator.runtime.daemon import Daemon
from registrator.runtime.observer import NullObserver
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.startup import reconciler_for
from registrator.runtime.work import Changes, FullPass, Pending
from tests.support import POLICY, docker_event, running, web
from tests.unit.fakes import FakeClock, FakeConsul, FakeDocker, FakeEvents
from tests.unit.test_cli import settings_from

SID = ServiceID("h:web:80")
C1 = ContainerID("c1")


# -- the stop signal, as Docker writes it -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("SIGTERM", 15),
        ("TERM", 15),
        ("sigquit", 3),
        (" 3 ", 3),
        ("SIGUSR1", 10),
        ("SIGRTMIN+3", 37),
        ("RTMAX-1", 63),
        ("SIGRTMAX", 64),
        ("", None),
        ("SIGFOO", None),
        ("0", None),
        ("65", None),
        ("RTMIN+40", None),
        ("RTMINx", None),
    ],
)
def test_signal_names_and_numbers_normalise_as_docker_spells_them(
    text: str, number: int | None
) -> None:
    assert signal_number(text) == number


def test_signal_names_for_log_lines() -> None:
    assert (signal_name(15), signal_name(6), signal_name(40)) == ("SIGTERM", "SIGABRT", "signal 40")


@pytest.mark.parametrize(
    ("config", "signal", "timeout"),
    [
        ({}, 15, 10),
        ({"StopSignal": "SIGQUIT", "StopTimeout": 30}, 3, 30),
        ({"StopSignal": "9", "StopTimeout": 0}, 9, 0),
        ({"StopSignal": "NOSUCH", "StopTimeout": -1}, 15, 10),
        ({"StopSignal": None, "StopTimeout": "x"}, 15, 10),
    ],
)
def test_inspect_reads_stop_signal_and_timeout_with_dockers_defaults(
    config: dict[str, Any], signal: int, timeout: int
) -> None:
    data = {"Id": "c1", "Config": config, "State": {"StartedAt": "2026-01-01T00:00:00Z"}}

    container = container_from_inspect(data)

    assert (container.stop_signal, container.stop_timeout) == (signal, timeout)
    assert container.started_at == "2026-01-01T00:00:00Z"
    assert not container.draining


def raw_kill(signal: str | None) -> dict[str, Any]:
    attributes = {"name": "web"} if signal is None else {"name": "web", "signal": signal}
    return {"Type": "container", "Action": "kill", "Actor": {"ID": "c1", "Attributes": attributes}}


@pytest.mark.parametrize(
    ("signal", "expected"),
    [("15", 15), ("1", 1), ("SIGQUIT", 3), ("x", None), (None, None)],
)
def test_a_kill_event_carries_its_signal(signal: str | None, expected: int | None) -> None:
    assert event_from_docker(raw_kill(signal)) == ContainerEvent(
        C1, Happened.SIGNALLED, None, expected
    )


# -- the rule, in the core ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "env", "maintenance"),
    [
        ("maintenance", {}, DRAINING),
        ("off", {}, ""),
        ("maintenance", {"SERVICE_DRAIN": "off"}, ""),
        ("maintenance", {"SERVICE_DRAIN": "no"}, ""),
        ("maintenance", {"SERVICE_DRAIN": "on"}, DRAINING),
    ],
)
def test_a_draining_container_goes_into_maintenance_unless_drain_is_off(
    mode: DrainMode, env: dict[str, str], maintenance: str
) -> None:
    policy = dataclasses.replace(POLICY, drain=mode)

    [service] = decide(web(env=env, draining=True), policy).services

    assert service.maintenance == maintenance
    assert "drain" not in dict(service.meta)


def test_drain_deregister_leaves_nothing_and_says_why() -> None:
    derivation = decide(web(draining=True), dataclasses.replace(POLICY, drain="deregister"))

    assert derivation.services == ()
    assert derivation.skipped == (("container", f"{DRAINING} (--drain deregister)"),)


def test_a_running_container_that_is_not_draining_is_untouched() -> None:
    [service] = decide(web(), POLICY).services

    assert service.maintenance == ""


def test_draining_beats_paused_and_an_opted_out_container_stays_paused() -> None:
    [drained] = decide(web(paused=True, draining=True), POLICY).services
    [paused] = decide(
        web(paused=True, draining=True, env={"SERVICE_DRAIN": "off"}), POLICY
    ).services

    assert (drained.maintenance, paused.maintenance) == (DRAINING, PAUSED)


def test_bad_drain_declarations_are_problems_and_the_default_applies() -> None:
    container = web(env={"SERVICE_DRAIN": "sometimes", "SERVICE_80_DRAIN": "off"}, draining=True)

    derivation = decide(container, POLICY)

    assert derivation.services[0].maintenance == DRAINING
    assert sorted((p.key, p.value) for p in derivation.problems) == [
        ("SERVICE_80_DRAIN", "off"),
        ("SERVICE_DRAIN", "sometimes"),
    ]


# -- the runtime: from the event alone, bounded, kept across resyncs ---------------------


def reconciler(docker: FakeDocker, consul: FakeConsul, **policy: Any) -> Reconciler:
    return reconciler_for(
        docker,
        consul,
        dataclasses.replace(POLICY, **policy),
        retry=RetryPolicy.without_waits(),
    )


def killed(*signals: int, container: ContainerID = C1) -> Changes:
    """What `kill` events alone said about `container`."""
    return Changes(
        frozenset({container}),
        signalled={container: frozenset(signals)},
        signal_only=frozenset({container}),
    )


def started(
    docker: FakeDocker, consul: FakeConsul, container: Container, **policy: Any
) -> Reconciler:
    docker.add(container)
    r = reconciler(docker, consul, **policy)
    r.full()
    docker.inspected.clear()
    return r


def test_the_stop_signal_drains_at_once_without_an_inspect(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    r = started(docker, consul, web())

    outcome = r.changes(killed(15))

    assert consul.registered[SID].maintenance == DRAINING
    assert docker.inspected == []
    assert outcome.done == {"service.maintenance": 1}


@pytest.mark.parametrize("signals", [(1,), (10,), (1, 10, 12)])
def test_other_signals_change_nothing(
    docker: FakeDocker, consul: FakeConsul, signals: tuple[int, ...]
) -> None:
    r = started(docker, consul, web())
    writes = consul.writes

    r.changes(killed(*signals))

    assert consul.writes == writes
    assert docker.inspected == []
    assert consul.registered[SID].maintenance == ""


def test_only_a_kill_that_can_start_a_drain_is_handed_on(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    """The daemon drops the others before they cost a lane's hand-over."""
    r = started(docker, consul, web(stop_signal=3))

    assert r.may_drain(C1, 3)
    assert not r.may_drain(C1, 9)  # `docker kill`
    assert not r.may_drain(C1, None)
    assert r.may_drain(ContainerID("f" * 64), 9)  # not known: its stop signal is not either
    r.changes(killed(3))
    assert not r.may_drain(C1, 3)  # draining already


def test_a_custom_stop_signal_drains_and_sigterm_does_not(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    r = started(docker, consul, web(stop_signal=3))

    r.changes(killed(15))
    assert consul.registered[SID].maintenance == ""

    r.changes(killed(3))
    assert consul.registered[SID].maintenance == DRAINING


def test_drain_deregister_removes_the_services_at_the_signal(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    r = started(docker, consul, web(), drain="deregister")

    r.changes(killed(15))

    assert SID not in consul.registered


def test_drain_off_and_an_opted_out_container_change_nothing(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    r = started(docker, consul, web(), drain="off")
    opted = started(docker, consul, web(env={"SERVICE_DRAIN": "off"}))

    r.changes(killed(15))
    opted.changes(killed(15))

    assert consul.registered[SID].maintenance == ""
    assert r.drain_deadline() is None
    assert opted.drain_deadline() is None


class Drains(NullObserver):
    def __init__(self) -> None:
        self.seen: list[bool] = []

    def drained(self, *, lifted: bool) -> None:
        self.seen.append(lifted)


def test_a_container_with_nothing_registered_is_not_drained(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    docker.add(web())
    drains = Drains()
    policy = dataclasses.replace(POLICY, require_label="mine")
    r = reconciler_for(docker, consul, policy, retry=RetryPolicy.without_waits(), observer=drains)
    r.full()

    r.changes(killed(15))

    assert r.drain_deadline() is None
    assert drains.seen == []


def test_drains_and_lifted_drains_are_observed(docker: FakeDocker, consul: FakeConsul) -> None:
    docker.add(web())
    drains = Drains()
    r = reconciler_for(docker, consul, POLICY, retry=RetryPolicy.without_waits(), observer=drains)
    r.full()

    r.known.signalled(C1, {15}, now=0.0)
    r.lift_drains(100.0)

    assert drains.seen == [False, True]


def test_die_after_the_drain_deregisters_and_ends_it(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    r = started(docker, consul, web())
    r.changes(killed(15))

    r.changes(Changes(frozenset({C1}), exited={C1: 143}))

    assert SID not in consul.registered
    assert r.drain_deadline() is None


def test_a_resync_and_the_agent_check_keep_a_drain_in_progress(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    r = started(docker, consul, web(started_at="t1"))
    r.changes(killed(15))

    for full in (FullPass.RESYNC, FullPass.AGENT_CHECK, FullPass.RESYNC | FullPass.REINSPECT):
        r.full(full)
        assert consul.registered[SID].maintenance == DRAINING, full
    assert docker.inspected == [C1]  # the reinspect saw it running, the same start


def test_a_restart_seen_by_an_inspect_ends_the_drain(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    r = started(docker, consul, web(started_at="t1"))
    r.changes(killed(15))
    docker.add(web(started_at="t2"))

    r.full(FullPass.RESYNC | FullPass.REINSPECT)

    assert consul.registered[SID].maintenance == ""
    assert r.drain_deadline() is None


def test_a_drain_is_lifted_at_stop_timeout_plus_five_seconds(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    r = started(docker, consul, web(stop_timeout=2))
    r.known.signalled(C1, {15}, now=100.0)
    r.changes(killed(15))
    assert consul.registered[SID].maintenance == DRAINING

    assert r.drain_deadline() == 107.0
    assert r.lift_drains(106.9) == []
    assert r.lift_drains(107.0) == [C1]
    r.changes(Changes(frozenset({C1})))

    assert consul.registered[SID].maintenance == ""
    assert r.drain_deadline() is None
    r.changes(killed(15))  # the next stop signal drains again
    assert consul.registered[SID].maintenance == DRAINING


def test_a_restarted_registrator_sees_a_running_container_and_drains_it_again(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    started(docker, consul, web()).changes(killed(15))

    again = reconciler(docker, consul)
    again.full()
    assert consul.registered[SID].maintenance == ""

    again.changes(killed(15))
    assert consul.registered[SID].maintenance == DRAINING


def test_a_stop_signal_for_a_container_not_yet_known_drains_after_one_inspect(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    r = reconciler(docker, consul)
    r.full()
    docker.add(web())

    r.changes(killed(15))

    assert consul.registered[SID].maintenance == DRAINING
    assert docker.inspected == [C1]


def test_many_containers_signalled_in_one_batch_are_drained_in_one_pass(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    names = [f"w{i}" for i in range(20)]
    for n in names:
        docker.add(web(id=ContainerID(n), name=n))
    r = reconciler(docker, consul)
    r.full()
    ids = frozenset(ContainerID(n) for n in names)

    outcome = r.changes(Changes(ids, signalled={c: frozenset({15}) for c in ids}, signal_only=ids))

    assert outcome.done == {"service.maintenance": 20}
    assert outcome.inspected == 0


# -- the worker: what events pile up, and when it wakes -----------------------------------


@pytest.mark.parametrize(
    ("events", "signalled", "signal_only"),
    [
        ([docker_event(C1, "kill", signal=15)], {C1: {15}}, True),
        (
            [docker_event(C1, "kill", signal=1), docker_event(C1, "kill", signal=15)],
            {C1: {1, 15}},
            True,
        ),
        ([docker_event(C1, "kill", signal=15), docker_event(C1, "start")], {}, False),
        ([docker_event(C1, "start"), docker_event(C1, "kill", signal=15)], {C1: {15}}, False),
        ([docker_event(C1, "kill", signal=15), docker_event(C1, "die", 143)], {C1: {15}}, False),
        ([docker_event(C1, "kill")], {}, True),
    ],
)
def test_work_keeps_the_signals_since_the_last_start(
    events: list[ContainerEvent], signalled: dict[str, set[int]], signal_only: bool
) -> None:
    work = Pending()
    for event in events:
        work.add(event)

    assert work.signalled == signalled
    assert (C1 in work.signal_only) is signal_only
    assert work.changes().signalled == {c: frozenset(s) for c, s in signalled.items()}


def test_the_loop_lifts_a_drain_at_its_deadline_with_no_timer_to_wake_it(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    """The worker may sleep with no deadline at all: the lane that starts a drain wakes it to
    set its alarm for the drain's deadline (stop timeout 0 plus five seconds, real ones: the
    worker's sleep is), and at that alarm it reads its own clock to lift it."""
    events, clock, drains = FakeEvents(), FakeClock(), Drains()
    docker.add(web(stop_timeout=0))
    r = reconciler_for(docker, consul, POLICY, retry=RetryPolicy.without_waits(), observer=drains)
    daemon = Daemon(r, events, retry=RetryPolicy.without_waits(), clock=clock)

    with running(daemon):
        assert daemon.reconciled.wait(timeout=15)
        events.push(docker_event(C1, "kill", signal=15))
        wait_until(lambda: drains.seen == [False], what="the drain")
        wait_until(lambda: consul.registered[SID].maintenance == DRAINING, what="draining")
        clock.advance(3600)  # when the alarm rings, the daemon's clock says the drain is due
        wait_until(lambda: drains.seen == [False, True], timeout=30, what="the drain lifted")
        wait_until(lambda: not consul.registered[SID].maintenance, what="maintenance ended")


# -- what operators see: options, metrics, explain ----------------------------------------


def test_drain_option_and_variable_reach_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert derive_policy(Settings(), "h").drain == "maintenance"
    assert derive_policy(settings_from("--drain", "deregister"), "h").drain == "deregister"
    monkeypatch.setenv("REGISTRATOR_DRAIN", "off")
    assert derive_policy(Settings(), "h").drain == "off"
    assert derive_policy(settings_from("--drain", "maintenance"), "h").drain == "maintenance"


def test_metrics_count_drains_and_lifted_drains() -> None:
    metrics = Metrics()
    metrics.drained(lifted=False)
    metrics.drained(lifted=False)
    metrics.drained(lifted=True)

    def value(name: str) -> float | None:
        return metrics.registry.get_sample_value(name)

    assert (value("registrator_drains_total"), value("registrator_drains_lifted_total")) == (2, 1)


@pytest.mark.parametrize(
    ("mode", "env", "line"),
    [
        (
            "maintenance",
            {},
            "drained (maintenance) until it dies, 17s at most (--drain maintenance)",
        ),
        ("deregister", {}, "deregistered at once (--drain deregister)"),
        ("maintenance", {"SERVICE_DRAIN": "off"}, "not drained (SERVICE_DRAIN=off); deregistered"),
    ],
)
def test_explain_shows_what_docker_stop_does(
    mode: DrainMode, env: dict[str, str], line: str
) -> None:
    policy = dataclasses.replace(POLICY, drain=mode)
    container = web(env=env, stop_signal=3, stop_timeout=12)

    text = report(container, decide(container, policy), policy=policy, consul=ConsulView(owned={}))

    assert f"on its stop signal (SIGQUIT, docker stop): {line}" in text


def test_explain_shows_a_draining_container_as_draining() -> None:
    container = web()
    [service] = decide(container, POLICY).services
    held = dataclasses.replace(service, maintenance=DRAINING)

    text = report(
        container, decide(container, POLICY), policy=POLICY, consul=ConsulView(owned={SID: held})
    )

    assert (
        "    in Consul: registered, draining (its stop signal was sent; deregistered when it dies)"
        in text
    )
