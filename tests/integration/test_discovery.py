"""What users build on registrator: Consul DNS and Prometheus' consul_sd_configs, for real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.rdatatype
import dns.resolver
import pytest

from tests.integration.conftest import Containers
from tests.support import ConsulDevAgent, PrometheusServer, RegistratorProcess, wait_until

StartRegistrator = Callable[..., RegistratorProcess]


def resolver(consul: ConsulDevAgent) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = consul.dns_port
    r.lifetime = 5
    return r


def test_consul_dns_answers_a_and_srv_for_a_registered_container(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    name = f"dns-{identity}"
    web = containers.run(env={"SERVICE_NAME": name}, ports={80: 0})
    start_registrator(consul.uri, "--hostname", identity)
    wait_until(lambda: f"{identity}:{containers.name(web)}:80" in consul.services(), what=name)

    a = resolver(consul).resolve(f"{name}.service.consul", "A")
    srv = resolver(consul).resolve(f"{name}.service.consul", "SRV")

    assert [r.address for r in a] == ["127.0.0.1"]
    [record] = list(srv)
    assert record.port == containers.host_port(web)
    # the SRV target resolves to the service's address in the same answer's additional section
    additional = [
        item.address
        for rrset in srv.response.additional
        if rrset.rdtype == dns.rdatatype.A
        for item in rrset
    ]
    assert additional == ["127.0.0.1"]


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: registrator
    consul_sd_configs:
      - server: "127.0.0.1:{consul_port}"
        refresh_interval: 1s  # the default 30s is between watches of a service
        services: [{services}]
    relabel_configs:
      # only services tagged "prometheus" are scraped
      - source_labels: [__meta_consul_tags]
        regex: ".*,prometheus,.*"
        action: keep
      # every SERVICE_<KEY> Meta pair becomes a target label
      - regex: "__meta_consul_service_metadata_(.+)"
        action: labelmap
      - source_labels: [__meta_consul_service]
        target_label: service
"""


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    started: list[PrometheusServer] = []

    def start(consul: ConsulDevAgent, services: list[str]) -> PrometheusServer:
        config = PROMETHEUS_CONFIG.format(
            consul_port=consul.http_port, services=", ".join(f'"{s}"' for s in services)
        )
        server = PrometheusServer(tmp_path / "prometheus", config).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def active_with(prometheus: PrometheusServer, service: str) -> list[dict[str, Any]]:
    return [
        t for t in prometheus.targets()["activeTargets"] if t["labels"].get("service") == service
    ]


def test_prometheus_discovers_a_registered_container_with_its_meta_as_labels(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    prometheus_for: Callable[..., PrometheusServer],
) -> None:
    scraped, unscraped = f"metrics-{identity}", f"quiet-{identity}"
    web = containers.run(
        env={
            "SERVICE_NAME": scraped,
            "SERVICE_TAGS": "prometheus,v2",
            "SERVICE_REGION": "eu-west",
            "SERVICE_TEAM": "payments",
        },
        ports={80: 0},
    )
    other = containers.run(env={"SERVICE_NAME": unscraped, "SERVICE_TAGS": "v2"}, ports={80: 0})
    prometheus = prometheus_for(consul, [scraped, unscraped])
    start_registrator(consul.uri, "--hostname", identity)

    for container in (web, other):
        service_id = f"{identity}:{containers.name(container)}:80"
        wait_until(lambda: service_id in consul.services(), what=service_id)  # noqa: B023

    [target] = wait_until(
        lambda: active_with(prometheus, scraped), timeout=30, what=f"{scraped} as a target"
    )

    labels = target["labels"]
    assert labels["instance"] == f"127.0.0.1:{containers.host_port(web)}"
    assert labels["job"] == "registrator"
    assert (labels["region"], labels["team"]) == ("eu-west", "payments")
    assert labels["registrator_host"] == identity
    wait_until(lambda: unscraped in dropped(prometheus), timeout=30, what=f"{unscraped} dropped")
    assert not active_with(prometheus, unscraped)


def dropped(prometheus: PrometheusServer) -> list[str]:
    return [
        t["discoveredLabels"].get("__meta_consul_service", "")
        for t in prometheus.targets()["droppedTargets"]
    ]
