"""The whole service definition: weights, tag override, SERVICE_PORT, check thresholds and
ports, durations as Consul reads them, and comparing with what the agent reports back."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest
from pydantic import ValidationError

from registrator.app.settings import MAX_SECONDS, Settings
from registrator.core.derive import derive
from registrator.core.durations import MAX_NANOSECONDS, MAXIMUM, DurationError, nanoseconds
from registrator.core.errors import RegistryRefused
from registrator.core.model import (
    Binding,
    Container,
    ContainerID,
    NetworkAddress,
    Port,
    Service,
    ServiceID,
    TaggedAddress,
    Weights,
)
from registrator.core.plan import Register
from registrator.core.plan import plan as plan_for
from registrator.core.policy import DEFAULT_DRIVEN_TTL, CheckPolicy, Policy
from registrator.registries.consul.held import reported
from registrator.registries.consul.payload import service_from_agent, service_payload
from registrator.runtime import startup
from registrator.runtime.reconciler import Reconciler
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.work import FullPass
from tests.support import POLICY
from tests.unit.fakes import FakeConsul, FakeDocker

#: plans as against the Consul agent, which keeps a service as `reported` says
plan = functools.partial(plan_for, stored=reported)

INTERNAL = dataclasses.replace(POLICY, internal=True)


def app(env: dict[str, str] | None = None, **changes: Any) -> Container:
    base = Container(
        id=ContainerID("c0ffee"),
        name="app",
        image="web",
        env=env or {},
        ports=(Port(80, "tcp", (Binding("0.0.0.0", 32768),)),),
        networks={"bridge": NetworkAddress("172.17.0.9")},
    )
    return dataclasses.replace(base, **changes)


def only(container: Container, policy: Policy = POLICY) -> Service:
    (service,) = derive(container, policy).services
    return service


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1ns", 1),
        ("1.5ns", 1),
        ("500ms", 500_000_000),
        ("1m30s", 90_000_000_000),
        (".5s", 500_000_000),
        ("5.s", 5_000_000_000),
        ("1h0.5m", 3_630_000_000_000),
        ("2us", 2_000),
        ("2\u00b5s", 2_000),
        ("2\u03bcs", 2_000),
        ("0000000000000000000000001s", 1_000_000_000),
        (MAXIMUM, MAX_NANOSECONDS),
        ("9223372036854775807ns", MAX_NANOSECONDS),
        ("9223372036.8547758079s", MAX_NANOSECONDS),  # digits past int64 are dropped, as in Go
    ],
)
def test_durations_are_read_as_go_reads_them(text: str, expected: int) -> None:
    assert nanoseconds(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("99999999999999999999s", "longest"),
        ("2562047h47m16.854775808s", "longest"),
        ("9223372036854775808ns", "longest"),
        ("5000000h5000000h", "longest"),
        ("9" * 5000 + "s", "longest"),
        ("0.5ns", "positive"),
        ("0s", "positive"),
        ("0", "syntax"),
        ("10", "syntax"),
        ("-5s", "syntax"),
        ("+5s", "syntax"),
        ("1.5e3s", "syntax"),
        (".s", "syntax"),
        ("1d", "syntax"),
        ("", "syntax"),
        ("5s\n", "syntax"),
        ("\u0665s", "syntax"),  # an Arabic-Indic five: a digit to Python, not to Go
    ],
)
def test_durations_consul_refuses_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(DurationError, match=why):
        nanoseconds(text)


def test_an_overflowing_timeout_holds_its_check_critical_instead_of_reaching_consul() -> None:
    env = {"SERVICE_CHECK_HTTP": "/", "SERVICE_CHECK_TIMEOUT": "99999999999999999999s"}

    d = derive(app(env), POLICY)

    (problem,) = d.problems
    assert (problem.key, problem.value) == ("SERVICE_CHECK_TIMEOUT", "99999999999999999999s")
    assert f"longer than Consul's longest duration ({MAXIMUM})" in problem.reason
    (check,) = d.services[0].checks
    assert (check.kind, check.status) == ("ttl", "critical")
    assert dict(check.definition) == {"TTL": f"{DEFAULT_DRIVEN_TTL}s"}


# -- weights and tag override ---------------------------------------------------------------


def test_weights_are_sent_whole_with_consuls_default_for_the_half_not_declared() -> None:
    assert only(app()).weights == Weights(1, 1)
    assert only(app({"SERVICE_WEIGHT_PASSING": "10"})).weights == Weights(10, 1)
    assert only(app({"SERVICE_WEIGHT_WARNING": "0"})).weights == Weights(1, 0)
    per_port = {"SERVICE_WEIGHT_PASSING": "3", "SERVICE_80_WEIGHT_PASSING": "7"}
    assert only(app(per_port)).weights == Weights(7, 1)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SERVICE_WEIGHT_PASSING", "0"),
        ("SERVICE_WEIGHT_PASSING", "65536"),
        ("SERVICE_WEIGHT_PASSING", "-1"),
        ("SERVICE_WEIGHT_WARNING", "1.5"),
        ("SERVICE_WEIGHT_WARNING", "99999999999999999999"),
    ],
)
def test_a_weight_consul_refuses_is_reported_and_its_default_used(key: str, value: str) -> None:
    d = derive(app({key: value}), POLICY)

    assert d.services[0].weights == Weights(1, 1)
    (problem,) = d.problems
    assert (problem.key, problem.value) == (key, value)
    assert "not a weight" in problem.reason


def test_tag_override_is_a_flag_and_none_of_these_keys_becomes_meta() -> None:
    env = {
        "SERVICE_ENABLE_TAG_OVERRIDE": "yes",
        "SERVICE_WEIGHT_PASSING": "2",
        "SERVICE_ADDRESS_FAMILY": "ipv4",
        "SERVICE_PORT": "80",
        "SERVICE_CHECK_PORT": "80",
    }
    service = only(app(env))

    assert service.enable_tag_override
    assert dict(service.meta) == {"registrator_host": "h"}
    bad = derive(app({"SERVICE_ENABLE_TAG_OVERRIDE": "perhaps"}), POLICY)
    assert not bad.services[0].enable_tag_override
    assert bad.problems[0].key == "SERVICE_ENABLE_TAG_OVERRIDE"


# -- SERVICE_PORT ---------------------------------------------------------------------------


def test_a_portless_worker_is_registered_with_service_port_under_internal() -> None:
    worker = app({"SERVICE_PORT": "9100", "SERVICE_NAME": "worker"}, ports=())

    assert derive(worker, POLICY).services == ()
    assert ("9100/tcp", "exposed but not published") in derive(worker, POLICY).skipped
    service = only(worker, INTERNAL)
    assert (service.id, service.name, service.address, service.port) == (
        "h:app:9100",
        "worker",
        "172.17.0.9",
        9100,
    )


def test_service_port_of_a_published_port_keeps_the_published_rule() -> None:
    service = only(app({"SERVICE_PORT": "80"}))

    assert (service.address, service.port) == ("10.0.0.5", 32768)


def test_service_port_takes_several_ports_and_protocols_and_reports_bad_ones() -> None:
    worker = app({"SERVICE_PORT": "9100, 53/udp, 70000, x/tcp"}, ports=())

    d = derive(worker, INTERNAL)

    assert [(s.id, s.port) for s in d.services] == [("h:app:53:udp", 53), ("h:app:9100", 9100)]
    assert [(p.key, p.value) for p in d.problems] == [
        ("SERVICE_PORT", "70000"),
        ("SERVICE_PORT", "x/tcp"),
    ]


def test_per_port_keys_of_a_declared_port_are_not_typos() -> None:
    worker = app({"SERVICE_PORT": "9100", "SERVICE_9100_NAME": "metrics"}, ports=())

    d = derive(worker, INTERNAL)

    assert d.problems == ()
    assert d.services[0].name == "metrics"


# -- thresholds and the check port ----------------------------------------------------------


def test_thresholds_go_to_every_check_consul_runs() -> None:
    env = {
        "SERVICE_CHECK_HTTP": "/h",
        "SERVICE_CHECK_TCP": "true",
        "SERVICE_CHECK_SUCCESS_BEFORE_PASSING": "2",
        "SERVICE_CHECK_FAILURES_BEFORE_CRITICAL": "3",
    }

    for check in only(app(env)).checks:
        assert dict(check.definition)["SuccessBeforePassing"] == 2
        assert dict(check.definition)["FailuresBeforeCritical"] == 3


@pytest.mark.parametrize("value", ["-1", "two", "2147483648", "1.0"])
def test_a_bad_threshold_holds_the_check_critical(value: str) -> None:
    env = {"SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_FAILURES_BEFORE_CRITICAL": value}

    d = derive(app(env), POLICY)

    assert d.problems[0].key == "SERVICE_CHECK_FAILURES_BEFORE_CRITICAL"
    assert "not a count" in d.problems[0].reason
    assert d.services[0].checks[0].status == "critical"


def test_a_threshold_on_a_lone_ttl_check_is_a_mistake_said_plainly() -> None:
    env = {"SERVICE_CHECK_TTL": "30s", "SERVICE_CHECK_SUCCESS_BEFORE_PASSING": "2"}

    (problem,) = derive(app(env), POLICY).problems

    assert problem.reason.startswith("a TTL check has no success before passing")


def test_the_check_port_sends_http_tcp_and_grpc_checks_to_that_ports_binding() -> None:
    ports = (
        Port(80, "tcp", (Binding("0.0.0.0", 32768),)),
        Port(8081, "tcp", (Binding("0.0.0.0", 32769),)),
    )
    env = {
        "SERVICE_80_CHECK_HTTP": "/health",
        "SERVICE_80_CHECK_TCP": "true",
        "SERVICE_80_CHECK_GRPC": "true",
        "SERVICE_80_CHECK_PORT": "8081",
        "SERVICE_8081_IGNORE": "true",
    }

    service = only(app(env, ports=ports))

    assert (service.port, service.address) == (32768, "10.0.0.5")
    targets = {c.id.rpartition(":")[2]: dict(c.definition) for c in service.checks}
    assert targets["http"]["HTTP"] == "http://10.0.0.5:32769/health"
    assert targets["tcp"]["TCP"] == "10.0.0.5:32769"
    assert targets["grpc"]["GRPC"] == "10.0.0.5:32769"


def test_with_internal_the_check_port_needs_no_exposure() -> None:
    env = {"SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_PORT": "8081"}

    (check,) = only(app(env), INTERNAL).checks

    assert dict(check.definition)["HTTP"] == "http://172.17.0.9:8081/health"


@pytest.mark.parametrize(
    ("value", "why"), [("8081", "not published"), ("http", "not a port number")]
)
def test_a_check_port_that_cannot_be_reached_holds_the_checks_critical(
    value: str, why: str
) -> None:
    env = {"SERVICE_CHECK_HTTP": "/h", "SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_PORT": value}

    d = derive(app(env), POLICY)

    assert [c.status for c in d.services[0].checks] == ["critical", "critical"]
    (problem,) = d.problems
    assert (problem.key, problem.value) == ("SERVICE_CHECK_PORT", value)
    assert why in problem.reason


# -- Consul's own limits, as Consul counts ---------------------------------------------------


def test_a_meta_value_is_measured_in_bytes_as_consul_does() -> None:
    fits, too_long = "\u00e9" * 256, "\u00e9" * 257  # 512 and 514 UTF-8 bytes

    assert dict(only(app({"SERVICE_CITY": fits})).meta)["city"] == fits
    d = derive(app({"SERVICE_CITY": too_long}), POLICY)
    assert "city" not in dict(d.services[0].meta)
    assert "bytes" in d.problems[0].reason


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SERVICE_NAME": "web\n"}, "SERVICE_NAME"),
        ({"SERVICE_REGION\n": "eu"}, "SERVICE_REGION\n"),
        ({"SERVICE_ID": "web\n"}, "SERVICE_ID"),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_value(env: dict[str, str], key: str) -> None:
    assert [p.key for p in derive(app(env), POLICY).problems] == [key]


# -- what the agent reports back ------------------------------------------------------------


def agent_copy(service: Service) -> dict[str, Any]:
    """What Consul 1.8.7 lists for `service` (seen from a real agent): what was sent, plus
    `wan_*` beside each `lan_*` address, and weights of 1 and 1 when none were sent."""
    payload = service_payload(service)
    data = {k: v for k, v in payload.items() if k not in {"Name", "Checks"}}
    data["Service"] = payload["Name"]
    for key, value in list(payload["TaggedAddresses"].items()):
        data["TaggedAddresses"].setdefault(key.replace("lan", "wan"), value)
    return data


def test_what_the_agent_reports_back_is_what_was_sent() -> None:
    env = {"SERVICE_WEIGHT_PASSING": "5", "SERVICE_ADDRESS_FAMILY": "ipv6", "SERVICE_TAGS": "a"}
    service = only(app(env, networks={"n": NetworkAddress("10.1.0.2", "fd00::2")}), INTERNAL)

    back = service_from_agent(agent_copy(service))

    assert back == dataclasses.replace(service, container="")
    assert [t.key for t in back.tagged_addresses] == ["lan_ipv4", "lan_ipv6"]


def test_keys_consul_adds_by_itself_are_not_a_change() -> None:
    service = only(app())
    data = agent_copy(service)
    data["TaggedAddresses"]["lan"] = {"Address": "10.0.0.5", "Port": 32768}
    data["TaggedAddresses"]["custom"] = {"Address": "x", "Port": 1}

    have = service_from_agent(data)

    assert plan({service.id: service}, {have.id: have}).empty


def test_the_own_address_consul_tags_by_itself_is_not_a_change() -> None:
    sent = Service(ServiceID("s"), "w", "192.0.2.1", 80)  # no tagged address sent
    own = {"Address": "192.0.2.1", "Port": 80}
    data = {**agent_copy(sent), "TaggedAddresses": {"lan_ipv4": own, "wan_ipv4": own}}

    assert plan({sent.id: sent}, {sent.id: service_from_agent(data)}).empty


def test_a_service_registered_without_weights_reads_back_as_consuls_default() -> None:
    data = {"ID": "s", "Service": "s", "Port": 1, "Weights": {"Passing": 1, "Warning": 1}}

    assert service_from_agent(data).weights == Weights()
    assert service_from_agent({"ID": "s"}).weights == Weights()


def test_tags_of_a_service_with_tag_override_are_never_compared() -> None:
    want = Service(ServiceID("s"), "web", "10.0.0.1", 80, tags=("a",), enable_tag_override=True)
    edited = dataclasses.replace(want, tags=("a", "edited-in-the-catalog"))

    assert plan({want.id: want}, {want.id: edited}).empty
    assert reported(want).tags == ()
    turned_off = dataclasses.replace(want, enable_tag_override=False)
    assert plan({want.id: turned_off}, {want.id: edited}).of(Register)


def test_a_changed_tagged_address_is_a_change() -> None:
    want = Service(ServiceID("s"), "w", "10.0.0.1", 80, tagged_addresses=(
        TaggedAddress("lan_ipv4", "10.0.0.1", 80), TaggedAddress("lan_ipv6", "fd00::1", 80),
    ))  # fmt: skip
    lost_ipv6 = dataclasses.replace(want, tagged_addresses=want.tagged_addresses[:1])

    assert plan({want.id: want}, {want.id: lost_ipv6}).of(Register)


# -- the reconcile path: refusals and tags the catalog owns ----------------------------------


class RefusingConsul(FakeConsul):
    """Refuses, as Consul does with a 400, every registration carrying a script check."""

    refused: int = 0

    def register(self, service: Service) -> None:
        if any(c.kind == "script" for c in service.checks):
            self.refused += 1
            raise RegistryRefused("PUT /v1/agent/service/register: 400 scripts are off")
        super().register(service)


def reconciler_for(consul: FakeConsul, *containers: Container, **options: Any) -> Reconciler:
    docker = FakeDocker()
    for container in containers:
        docker.add(container)
    policy = Policy(hostname="h", **options)
    return startup.reconciler_for(docker, consul, policy, retry=RetryPolicy.without_waits())


def test_a_refused_service_is_registered_plainer_once_and_never_written_again() -> None:
    consul = RefusingConsul()
    scripted = app({"SERVICE_CHECK_SCRIPT": "check-it", "SERVICE_REGION": "eu"})
    reconciler = reconciler_for(consul, scripted, checks=CheckPolicy(enable_script_checks=True))

    first = reconciler.full()
    writes = consul.writes
    later = [reconciler.full(FullPass.RESYNC) for _ in range(3)]

    assert first.ok
    held = consul.registered[ServiceID("h:app:80")]
    (check,) = held.checks
    assert (check.id, check.status) == ("service:h:app:80:refused", "critical")
    assert dict(held.meta)["region"] == "eu"  # only the checks were left out
    assert consul.refused == 1
    assert [o.plan.count() for o in later][1:] == [{}, {}]
    assert consul.writes - writes <= 1  # at most the stand-in's output, once


def test_tags_of_an_override_service_edited_elsewhere_are_neither_compared_nor_reverted() -> None:
    consul = FakeConsul()
    tagged = app({"SERVICE_TAGS": "a", "SERVICE_ENABLE_TAG_OVERRIDE": "true"})
    reconciler = reconciler_for(consul, tagged)
    reconciler.full()
    sid = ServiceID("h:app:80")
    consul.registered[sid] = dataclasses.replace(consul.registered[sid], tags=("a", "edited"))

    assert reconciler.full().plan.empty
    consul.registered[sid] = dataclasses.replace(consul.registered[sid], address="10.9.9.1")
    (action,) = reconciler.full().plan.actions

    assert isinstance(action, Register)
    assert action.service.tags == ("a", "edited")  # re-registered for its address, tags kept
    assert consul.registered[sid].tags == ("a", "edited")


def test_the_ttl_option_stays_within_consuls_longest_duration() -> None:
    assert Settings(ttl=MAX_SECONDS).ttl == 9223372036
    with pytest.raises(ValidationError, match="less than or equal to 9223372036"):
        Settings(ttl=MAX_SECONDS + 1)
