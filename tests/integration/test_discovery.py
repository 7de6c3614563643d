"""What users build on registrator: Consul DNS and Prometheus' consul_sd_configs, for real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.rdatatype
import dns.resolver
import pytest
import yaml

from harness import ROOT, ConsulDevAgent, PrometheusServer, wait_until
from tests.integration.support import Containers, StartRegistrator


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
    # DNS answers from the catalog, which the agent updates a moment after registering
    wait_until(lambda: consul.get(f"/v1/catalog/service/{name}"), what=f"{name} in the catalog")

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


def prometheus_config(consul: ConsulDevAgent) -> str:
    """compose/prometheus.yml, the recipe users start from, pointed at the test's agent."""
    config = yaml.safe_load((ROOT / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    [sd] = jobs["consul-services"]["consul_sd_configs"]
    sd["server"] = consul.address
    sd["refresh_interval"] = "1s"  # the default 30s passes between two watches of a service
    return yaml.safe_dump({**config, "scrape_configs": [jobs["consul-services"]]})


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    started: list[PrometheusServer] = []

    def start(consul: ConsulDevAgent) -> PrometheusServer:
        config = prometheus_config(consul)
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
            "SERVICE_METRICS_PATH": "/status/metrics",
        },
        ports={80: 0},
    )
    other = containers.run(env={"SERVICE_NAME": unscraped, "SERVICE_TAGS": "v2"}, ports={80: 0})
    prometheus = prometheus_for(consul)
    start_registrator(consul.uri, "--hostname", identity)

    for container in (web, other):
        service_id = f"{identity}:{containers.name(container)}:80"
        wait_until(lambda: service_id in consul.services(), what=service_id)  # noqa: B023

    # Prometheus retries a failed Consul query after 15 s: allow for one on a loaded machine
    try:
        [target] = wait_until(lambda: active_with(prometheus, scraped), timeout=45)
    except AssertionError as e:
        raise AssertionError(f"{scraped} never became a target:\n{prometheus.log_tail()}") from e

    labels = target["labels"]
    assert labels["instance"] == f"127.0.0.1:{containers.host_port(web)}"
    assert labels["job"] == "consul-services"
    assert target["scrapeUrl"].endswith("/status/metrics")  # SERVICE_METRICS_PATH
    assert (labels["region"], labels["team"]) == ("eu-west", "payments")
    assert labels["registrator_host"] == identity
    # a service without the tag is not even asked for (the recipe filters on it in Consul)
    discovered = {
        t["discoveredLabels"].get("__meta_consul_service")
        for kind in ("activeTargets", "droppedTargets")
        for t in prometheus.targets()[kind]
    }
    assert unscraped not in discovered
