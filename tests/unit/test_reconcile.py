"""The reconcile path with in-memory peers: what it writes, and what it leaves alone."""

from __future__ import annotations

import dataclasses

import pytest

from registrator.core.errors import RegistryRefused, RegistryUnavailable
from registrator.core.model import (
    OWNER_META_KEY,
    Container,
    ContainerID,
    Health,
    Port,
    Service,
    ServiceID,
)
from registrator.core.policy import CheckPolicy, Policy
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.startup import reconciler_for
from registrator.runtime.work import Changes, FullPass
from tests.support import web
from tests.unit.fakes import FakeConsul, FakeDocker, compared


def changed(
    *ids: str, exited: dict[ContainerID, int] | None = None, network_only: bool = False
) -> Changes:
    """What events said about the containers `ids`."""
    named = frozenset(ContainerID(i) for i in ids)
    return Changes(named, exited or {}, named if network_only else frozenset())


@pytest.fixture
def reconciler(docker: FakeDocker, consul: FakeConsul) -> Reconciler:
    return reconciler_for(docker, consul, Policy(hostname="h"), retry=RetryPolicy.without_waits())


def test_full_reconcile_registers_running_containers_at_the_agent_address(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web())

    outcome = reconciler.full()

    assert outcome.registered == 1
    assert consul.registered[ServiceID("h:web:80")].address == "10.9.9.9"


def test_a_second_full_reconcile_writes_nothing_and_inspects_nothing(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web())
    first = reconciler.full()
    writes, inspected = consul.writes, len(docker.inspected)

    outcome = reconciler.full()

    assert (first.inspected, outcome.inspected) == (1, 0)
    assert outcome.plan.empty
    assert outcome.plan.unchanged == 1
    assert (consul.writes, len(docker.inspected)) == (writes, inspected)


def test_event_for_a_stopped_container_deregisters_only_its_services(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web("c1", "a"))
    docker.add(web("c2", "b"))
    reconciler.full()
    docker.add(dataclasses.replace(web("c1", "a"), running=False, status="exited"))

    outcome = reconciler.changes(changed("c1"))

    assert outcome.deregistered == 1
    assert list(consul.registered) == ["h:b:80"]


def test_a_die_event_deregisters_without_waiting_for_an_inspect(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web("c1", "a"))
    docker.add(web("c2", "b"))
    reconciler.full()
    docker.add(dataclasses.replace(web("c1", "a"), running=False, status="exited"))
    inspected = len(docker.inspected)
    died = {ContainerID("c1"): 137}

    outcome = reconciler.changes(Changes(frozenset(died), died))

    assert (outcome.deregistered, outcome.inspected) == (1, 0)
    assert len(docker.inspected) == inspected
    assert list(consul.registered) == ["h:b:80"]


@pytest.mark.parametrize("keep_failed", [False, True])
def test_a_full_pass_inspects_a_stopped_container_only_to_keep_its_services(
    docker: FakeDocker, consul: FakeConsul, keep_failed: bool
) -> None:
    policy = Policy(hostname="h", keep_failed=keep_failed)
    reconciler = reconciler_for(docker, consul, policy, retry=RetryPolicy.without_waits())
    docker.add(dataclasses.replace(web(), running=False, status="exited", exit_code=1))

    outcome = reconciler.full()

    assert outcome.inspected == int(keep_failed)
    assert reconciler.known.seen(docker.containers()[0])
    docker.add(web())
    assert reconciler.full().registered == 1


def test_an_event_before_the_first_full_pass_reads_only_its_own_services(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web("c1", "a"))
    docker.add(web("c2", "b"))

    reconciler.changes(changed("c1"))

    assert consul.reads == [frozenset({"h:a:80"})]
    assert list(consul.registered) == ["h:a:80"]


def test_an_event_after_a_full_pass_reads_nothing_from_the_agent(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web("c1", "a"))
    docker.add(web("c2", "b"))
    reconciler.full()
    docker.add(web("c1", "a", host_port=1))

    reconciler.changes(changed("c1"))

    assert consul.reads == [None]  # the full pass's
    assert consul.registered[ServiceID("h:a:80")].port == 1


def test_an_event_for_a_container_without_services_asks_for_no_service(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(dataclasses.replace(web(), ports=()))

    outcome = reconciler.changes(changed("c1"))

    assert outcome.plan.empty
    assert consul.reads == [frozenset()]  # the adapter answers that without a request


@pytest.mark.parametrize(
    ("known", "inspected"),
    [(None, 0), ("running", 1), ("exited", 0)],
    ids=["starting", "running", "stopped"],
)
def test_a_network_event_is_inspected_only_for_a_running_container(
    docker: FakeDocker, reconciler: Reconciler, known: str | None, inspected: int
) -> None:
    """Docker answers the inspect of a starting or dying container only when it is done."""
    if known is not None:
        docker.add(dataclasses.replace(web(), running=known == "running", status=known))
        reconciler.full()
    docker.add(web())

    outcome = reconciler.changes(changed("c1", network_only=True))

    assert outcome.inspected == inspected


@pytest.mark.parametrize(
    ("exited", "keep_failed"),
    [
        (None, False),  # the container changed
        ({ContainerID("c1"): 0}, False),  # a die: removed
        ({ContainerID("c1"): 1}, True),  # -deregister on-success keeps it
    ],
    ids=["changed", "died", "kept"],
)
def test_an_event_plans_against_what_the_agent_was_last_seen_and_made_to_hold(
    docker: FakeDocker,
    consul: FakeConsul,
    exited: dict[ContainerID, int] | None,
    keep_failed: bool,
) -> None:
    reconciler = reconciler_for(
        docker,
        consul,
        Policy(hostname="h", keep_failed=keep_failed),
        retry=RetryPolicy.without_waits(),
    )
    docker.add(web())
    reconciler.full()
    docker.add(web(host_port=1))

    reconciler.changes(changed("c1", exited=exited))

    assert consul.reads == [None]
    assert (ServiceID("h:web:80") in consul.registered) is (exited is None or keep_failed)
    assert compared(reconciler.mirror.view()) == compared(consul.registered)


def test_a_die_of_a_container_never_seen_is_inspected(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(dataclasses.replace(web("c1", "a"), running=False, status="exited"))

    outcome = reconciler.changes(changed("c1", exited={ContainerID("c1"): 0}))

    assert outcome.inspected == 1
    assert consul.registered == {}


def test_event_for_a_removed_container_deregisters_it(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web())
    reconciler.full()
    del docker.containers_by_id[ContainerID("c1")]

    reconciler.changes(changed("c1"))

    assert consul.registered == {}


def test_rename_replaces_the_service_id(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web("c1", "old"))
    reconciler.full()
    docker.add(web("c1", "new"))

    reconciler.changes(changed("c1"))

    assert list(consul.registered) == ["h:new:80"]


def test_full_reconcile_sweeps_only_own_stale_services(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    own = Service(ServiceID("h:gone:80"), "x", "a", 1, meta=((OWNER_META_KEY, "h"),))
    other = Service(ServiceID("o:gone:80"), "x", "a", 1, meta=((OWNER_META_KEY, "o"),))
    by_hand = Service(ServiceID("by-hand"), "x", "a", 1)
    consul.registered = {s.id: s for s in (own, other, by_hand)}

    reconciler.full()

    assert set(consul.registered) == {"o:gone:80", "by-hand"}


def test_drift_in_consul_is_repaired_by_a_full_reconcile(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web())
    reconciler.full()
    sid = ServiceID("h:web:80")
    consul.registered[sid] = dataclasses.replace(consul.registered[sid], port=1)

    outcome = reconciler.full()

    assert outcome.updated == 1
    assert consul.registered[sid].port == 32768


def test_consul_down_raises_and_nothing_is_lost_when_it_returns(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web())
    consul.down = True
    with pytest.raises(RegistryUnavailable):
        reconciler.full()
    consul.down = False

    reconciler.full()

    assert list(consul.registered) == ["h:web:80"]


def _exited(container: Container, code: int) -> Container:
    return dataclasses.replace(container, running=False, status="exited", exit_code=code, ports=())


@pytest.mark.parametrize(
    ("code", "kept"), [(3, True), (1, True), (0, False), (137, False), (143, False)]
)
def test_on_success_keeps_only_containers_that_failed_by_themselves(
    docker: FakeDocker, consul: FakeConsul, code: int, kept: bool
) -> None:
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h", keep_failed=True), retry=RetryPolicy.without_waits()
    )
    docker.add(web())
    reconciler.full()
    docker.add(_exited(web(), code))

    reconciler.changes(changed("c1"))
    reconciler.full()

    assert (ServiceID("h:web:80") in consul.registered) is kept


@pytest.mark.parametrize(("code", "kept"), [(0, False), (1, True), (137, False)])
def test_on_success_reads_the_exit_code_of_a_die_event(
    docker: FakeDocker, consul: FakeConsul, code: int, kept: bool
) -> None:
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h", keep_failed=True), retry=RetryPolicy.without_waits()
    )
    docker.add(web())
    reconciler.full()

    reconciler.changes(changed("c1", exited={ContainerID("c1"): code}))

    assert (ServiceID("h:web:80") in consul.registered) is kept


def test_on_success_adopts_the_services_of_a_failed_container_seen_only_after_it_exited(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    left_over = Service(ServiceID("h:web:80"), "web", "a", 1, meta=((OWNER_META_KEY, "h"),))
    consul.registered[left_over.id] = left_over
    docker.add(_exited(web(), 2))
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h", keep_failed=True), retry=RetryPolicy.without_waits()
    )

    outcome = reconciler.full()

    assert outcome.plan.empty
    assert ServiceID("h:web:80") in consul.registered


def test_pause_sets_maintenance_without_re_registering_and_unpause_clears_it(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web())
    reconciler.full()
    sid = ServiceID("h:web:80")
    docker.add(dataclasses.replace(web(), paused=True, status="paused"))

    reconciler.changes(changed("c1"))
    assert consul.registered[sid].maintenance
    assert consul.writes == 2  # one register, one maintenance toggle

    docker.add(web())
    reconciler.changes(changed("c1"))
    assert not consul.registered[sid].maintenance


def test_release_deregisters_everything_owned_and_nothing_else(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(web())
    reconciler.full()
    consul.registered[ServiceID("by-hand")] = Service(ServiceID("by-hand"), "x", "a", 1)

    reconciler.release()

    assert list(consul.registered) == ["by-hand"]


def test_a_container_sharing_another_ones_network_is_registered_at_the_peers_port(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    peer = web(cid="peer", name="pod", host_port=40000)
    app = Container(
        id=ContainerID("app"),
        name="app",
        image="app",
        network_mode="container:peer",
        ports=(Port(80, "tcp"),),
        env={"SERVICE_NAME": "app"},
    )
    docker.add(peer)
    docker.add(app)
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h"), retry=RetryPolicy.without_waits()
    )

    reconciler.full()

    service = consul.registered[ServiceID("h:app:80")]
    assert (service.name, service.address, service.port) == ("app", "10.9.9.9", 40000)


MIRROR = "service:h:web:80:docker-health"


def checked_web(health: str) -> Container:
    return dataclasses.replace(
        web(), env={"SERVICE_CHECK_TCP": "true"}, health=Health(health, f"probe: {health}")
    )


def check(consul: FakeConsul, check_id: str) -> tuple[str | None, str]:
    found = {c.id: c for c in consul.registered[ServiceID("h:web:80")].checks}[check_id]
    return found.status, found.output


def test_services_register_with_their_checks(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(checked_web("starting"))

    reconciler.full()

    checks = consul.registered[ServiceID("h:web:80")].checks
    assert [c.id for c in checks] == [MIRROR, "service:h:web:80:tcp"]
    assert check(consul, MIRROR) == ("critical", "probe: starting")


def test_a_health_event_writes_only_the_check_status(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(checked_web("starting"))
    reconciler.full()
    writes = consul.writes
    docker.add(checked_web("healthy"))

    outcome = reconciler.changes(changed("c1"))

    assert (outcome.registered, outcome.updated, outcome.done.get("check.status", 0)) == (0, 0, 1)
    assert consul.writes == writes + 1
    assert check(consul, MIRROR) == ("passing", "probe: healthy")


def test_a_full_reconcile_puts_back_a_status_changed_by_hand(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(checked_web("unhealthy"))
    reconciler.full()
    consul.update_ttl(
        dataclasses.replace(consul.registered[ServiceID("h:web:80")].checks[0], status="passing")
    )

    reconciler.full()

    assert check(consul, MIRROR) == ("critical", "probe: unhealthy")


def test_a_check_removed_by_hand_is_put_back_by_a_full_reconcile(
    docker: FakeDocker, consul: FakeConsul, reconciler: Reconciler
) -> None:
    docker.add(checked_web("healthy"))
    reconciler.full()
    sid = ServiceID("h:web:80")
    consul.registered[sid] = dataclasses.replace(consul.registered[sid], checks=())

    outcome = reconciler.full()

    assert outcome.updated == 1
    assert [c.id for c in consul.registered[sid].checks] == [MIRROR, "service:h:web:80:tcp"]
    assert check(consul, MIRROR) == ("passing", "probe: healthy")


def test_a_refresh_rewrites_every_driven_check_and_nothing_else(
    docker: FakeDocker, consul: FakeConsul
) -> None:
    policy = Policy(hostname="h", checks=CheckPolicy(ttl=30, ttl_refresh=10))
    reconciler = reconciler_for(docker, consul, policy, retry=RetryPolicy.without_waits())
    docker.add(checked_web("healthy"))
    reconciler.full()
    writes = consul.writes

    assert reconciler.full().plan.empty
    outcome = reconciler.full(FullPass.RESYNC | FullPass.REFRESH)

    refreshed = outcome.done.get("check.refreshed", 0)
    assert (outcome.registered, outcome.updated, refreshed) == (0, 0, 2)
    assert consul.writes == writes + 2
    assert check(consul, "service:h:web:80:registrator")[0] == "passing"


class RefusingConsul(FakeConsul):
    """Refuses, as the agent does with a 400, any service still carrying `refused` values."""

    def __init__(self, *, checks: bool, meta: bool) -> None:
        super().__init__()
        self.refuse_checks, self.refuse_meta = checks, meta
        self.refuse_everything = False
        self.refusals = 0

    def register(self, service: Service) -> None:
        ours = [c for c in service.checks if not c.id.endswith(":refused")]
        meta = self.refuse_meta and len(service.meta) > 1
        if self.refuse_everything or (self.refuse_checks and ours) or meta:
            self.refusals += 1
            raise RegistryRefused("PUT /v1/agent/service/register: 400 Invalid check")
        super().register(service)


def declaring(**env: str) -> Container:
    return dataclasses.replace(web(), env=env)


@pytest.mark.parametrize(("meta", "refusals"), [(False, 1), (True, 2)])
def test_a_refused_service_is_registered_without_the_refused_part_and_not_retried(
    docker: FakeDocker, meta: bool, refusals: int
) -> None:
    consul = RefusingConsul(checks=True, meta=meta)
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h"), retry=RetryPolicy.without_waits()
    )
    docker.add(declaring(SERVICE_CHECK_TTL="30s", SERVICE_REGION="eu"))

    first = reconciler.full()
    for _ in range(3):
        again = reconciler.full()
        assert again.plan.empty

    held = consul.registered[ServiceID("h:web:80")]
    assert first.ok
    assert consul.refusals == refusals
    assert [(c.id, c.status) for c in held.checks] == [("service:h:web:80:refused", "critical")]
    assert ("region", "eu") not in held.meta if meta else ("region", "eu") in held.meta


def test_a_refused_service_is_written_again_once_its_declaration_changes(
    docker: FakeDocker,
) -> None:
    consul = RefusingConsul(checks=True, meta=False)
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h"), retry=RetryPolicy.without_waits()
    )
    docker.add(declaring(SERVICE_CHECK_TTL="30s"))
    reconciler.full()
    consul.refuse_checks = False
    docker.add(declaring(SERVICE_CHECK_TTL="31s"))

    reconciler.changes(changed("c1"))

    [check] = consul.registered[ServiceID("h:web:80")].checks
    assert check.id == "service:h:web:80"  # the declared TTL check, no longer refused


def test_a_service_refused_in_every_form_is_not_written_again_nor_owed(
    docker: FakeDocker,
) -> None:
    consul = RefusingConsul(checks=True, meta=True)
    consul.refuse_everything = True
    reconciler = reconciler_for(
        docker, consul, Policy(hostname="h"), retry=RetryPolicy.without_waits()
    )
    docker.add(declaring(SERVICE_CHECK_TTL="30s", SERVICE_REGION="eu"))

    first = reconciler.full()
    again = [reconciler.full() for _ in range(3)]

    assert consul.refusals == 3  # as declared, without checks, without Meta: then never again
    assert first.ok
    assert all(o.ok and o.plan.empty for o in again)
    assert consul.registered == {}
