"""The Consul adapter's translation of checks both ways, and its filter (no agent needed)."""

from __future__ import annotations

import pytest

from registrator.core.model import Check, Service, ServiceID
from registrator.registries.consul.agent import MAX_FILTERED_IDS, id_filter
from registrator.registries.consul.payload import check_from_agent, check_payload, service_payload

HTTP = Check(
    "service:s:http",
    "web HTTP",
    "http",
    (
        ("HTTP", "http://10.0.0.5:80/h"),
        ("Header", (("X-A", ("1", "2")),)),
        ("Interval", "10s"),
        ("TLSSkipVerify", True),
    ),
    notes="declared by SERVICE_CHECK_HTTP; registrator definition abc",
)


def test_a_registration_carries_every_check_in_consul_terms() -> None:
    script = Check("service:s:script", "web script", "script", (("Args", ("a", "b c")),))
    service = Service(ServiceID("s"), "web", "10.0.0.5", 80, checks=(HTTP, script))

    checks = service_payload(service)["Checks"]

    assert checks == [
        {
            "CheckID": "service:s:http",
            "Name": "web HTTP",
            "Notes": HTTP.notes,
            "HTTP": "http://10.0.0.5:80/h",
            "Header": {"X-A": ["1", "2"]},
            "Interval": "10s",
            "TLSSkipVerify": True,
        },
        {"CheckID": "service:s:script", "Name": "web script", "Notes": "", "Args": ["a", "b c"]},
    ]


def test_a_driven_check_registers_with_its_current_status() -> None:
    mirror = Check("service:s:docker-health", "x", "ttl", (("TTL", "600s"),), status="passing")

    assert check_payload(mirror)["Status"] == "passing"
    assert "Status" not in check_payload(HTTP)


def test_a_listed_check_keeps_what_the_agent_reports() -> None:
    raw = {
        "CheckID": "service:s:http",
        "Name": "web HTTP",
        "Type": "http",
        "Notes": HTTP.notes,
        "Status": "passing",
        "Output": "HTTP GET ...: 200 OK",
        "ServiceID": "s",
        "Definition": {},
    }

    check = check_from_agent(raw)

    assert check.reported() == HTTP.reported()
    assert (check.status, check.output) == ("passing", "HTTP GET ...: 200 OK")


def test_a_few_ids_become_one_filter_in_a_stable_order() -> None:
    assert id_filter("ID", ["h:b:80", "h:a:80"]) == {"filter": 'ID == "h:a:80" or ID == "h:b:80"'}


@pytest.mark.parametrize(
    "ids",
    [
        None,
        [f"h:c{n}:80" for n in range(MAX_FILTERED_IDS + 1)],
        ['h:say"hi":80'],
        ["h:back\\slash:80"],
        ["h:tick`:80"],
    ],
    ids=["all", "too-many", "quote", "backslash", "backtick"],
)
def test_no_filter_when_it_would_cost_more_or_could_not_carry_an_id(
    ids: list[str] | None,
) -> None:
    assert id_filter("ServiceID", ids) == {}
