"""/metrics, /healthz, /readyz and JSON logs of the real registrator process, over HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from typing import Any

from harness import ConsulDevAgent, refusing_port, wait_until
from tests.integration.support import Containers, StartRegistrator, run_registrator


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def healthcheck(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """`registrator healthcheck`, told the address the way the image tells it: by environment."""
    address = {"REGISTRATOR_METRICS_ADDR": f"127.0.0.1:{port}"}
    return run_registrator("healthcheck", *args, env=address, isolated=False)


def sample(text: str, series: str) -> float:
    """The value of one series in Prometheus' text format (`name{labels}` as written)."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.strip()]


def test_metrics_readiness_and_json_logs_of_a_running_daemon(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = start_registrator(
        consul.uri,
        "--hostname",
        identity,
        "--metrics-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
    )
    port = reg.listening_port()
    web = containers.run(env={"SERVICE_NAME": "observed", "SERVICE_BAD.KEY": "x"}, ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"
    wait_until(lambda: service_id in consul.services(), what=service_id)

    assert get(port, "/healthz") == (200, "ok\n")
    wait_until(lambda: get(port, "/readyz") == (200, "ok\n"), what="/readyz 200")
    assert healthcheck(port, "--ready").stdout == "healthcheck: /readyz 200 ok\n"
    status, metrics = get(port, "/metrics")
    assert status == 200
    assert sample(metrics, "registrator_registrations_total") >= 1
    assert sample(metrics, "registrator_services_owned") >= 1
    assert sample(metrics, 'registrator_errors_total{kind="container.bad_declaration"}') >= 1
    assert sample(metrics, 'registrator_reconcile_duration_seconds_count{scope="full"}') >= 1
    assert sample(metrics, 'registrator_reconnects_total{peer="docker"}') == 0

    containers.api.stop(web, timeout=1)  # drained at SIGTERM, deregistered at death
    wait_until(lambda: service_id not in consul.services(), what=f"{service_id} gone")
    wait_until(
        lambda: sample(get(port, "/metrics")[1], "registrator_deregistrations_total") >= 1,
        what="a deregistration counted",
    )
    assert sample(get(port, "/metrics")[1], "registrator_drains_total") == 1

    entries = json_lines(reg.log)  # every line of the log is one JSON object
    registered = [e for e in entries if e.get("service") == service_id]
    assert [e["event"] for e in registered] == [
        "service.registered",
        "service.maintenance",
        "service.deregistered",
    ]
    assert {e["container"] for e in registered} == {containers.name(web)}
    [bad] = [
        e
        for e in entries
        if e["event"] == "container.bad_declaration" and e["container"] == containers.name(web)
    ]
    assert (bad["key"], bad["value"], bad["level"]) == ("SERVICE_BAD.KEY", "x", "WARNING")


def test_readyz_names_an_unreachable_consul_while_healthz_stays_up(
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    with refusing_port() as nothing_there:
        _readyz_names_an_unreachable_consul(start_registrator, identity, nothing_there)


def _readyz_names_an_unreachable_consul(
    start_registrator: StartRegistrator, identity: str, nothing_there: int
) -> None:
    reg = start_registrator(
        f"consul://127.0.0.1:{nothing_there}",
        "--hostname",
        identity,
        "--metrics-addr",
        "127.0.0.1:0",
    )
    metrics_port = reg.listening_port()

    wait_until(lambda: get(metrics_port, "/healthz")[0] == 200, what="/healthz up")

    # Docker answers (once more, should another test have restarted it); Consul never does
    def readyz_with_docker_up() -> tuple[int, str] | None:
        answer = get(metrics_port, "/readyz")
        return None if "docker: " in answer[1] else answer

    status, body = wait_until(readyz_with_docker_up, what="/readyz with Docker reachable")

    assert status == 503
    lines = body.splitlines()
    assert "first-reconcile: not completed yet" in lines
    assert any(line.startswith("consul: ") for line in lines), body
    assert healthcheck(metrics_port).returncode == 0
    not_ready = healthcheck(metrics_port, "--ready")
    assert not_ready.returncode == 1
    assert not_ready.stdout.startswith("healthcheck: /readyz 503 first-reconcile")


def test_a_metrics_addr_already_in_use_stops_the_daemon_with_one_clear_line(
    consul: ConsulDevAgent,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    first = start_registrator(consul.uri, "--hostname", identity, "--metrics-addr", "127.0.0.1:0")
    port = first.listening_port()
    wait_until(lambda: get(port, "/healthz")[0] == 200, what="first daemon's /healthz")

    second = start_registrator(
        consul.uri, "--hostname", identity, "--metrics-addr", f"127.0.0.1:{port}"
    )

    process = second.process
    assert process is not None
    assert wait_until(process.poll, what="the second daemon's exit") == 1
    assert f"--metrics-addr 127.0.0.1:{port}" in second.log
    assert first.process is not None
    assert first.process.poll() is None
