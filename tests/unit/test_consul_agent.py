"""The Consul adapter's translation of checks, both ways (no agent needed for that part)."""

from __future__ import annotations

from registrator.consul_agent import check_from_agent, check_payload, service_payload
from registrator.model import Check, Service, ServiceID

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
