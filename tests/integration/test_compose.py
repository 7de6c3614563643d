"""compose/: the stack validates with Debian's docker-compose, its Prometheus config with promtool.

(The Prometheus recipe itself runs for real in test_discovery, against a registered container.)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from harness import ROOT, prometheus_binary

COMPOSE = ROOT / "compose" / "docker-compose.yml"
PROMETHEUS_YML = ROOT / "compose" / "prometheus.yml"


def compose_config() -> dict[str, Any]:
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose missing: scripts/stack.sh compose installs it"
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_the_compose_stack_validates_and_declares_what_the_recipes_rely_on() -> None:
    services = compose_config()["services"]

    assert set(services) == {"consul", "registrator", "web", "worker", "prometheus"}
    registrator = services["registrator"]
    assert registrator["build"]["context"] == str(ROOT)
    assert registrator["network_mode"] == "host"
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in registrator["volumes"]
    assert registrator["environment"]["REGISTRATOR_METRICS_ADDR"] == "127.0.0.1:9181"
    assert services["web"]["environment"]["SERVICE_CHECK_HTTP"] == "/health"
    assert "prometheus" in services["web"]["environment"]["SERVICE_TAGS"].split(",")
    assert services["worker"]["healthcheck"]["test"][0] == "CMD"
    assert "prometheus" in services["worker"]["labels"]["SERVICE_TAGS"].split(",")
    assert (
        f"{PROMETHEUS_YML}:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    )


def test_the_prometheus_config_is_valid_and_relabels_consul_meta() -> None:
    promtool = Path(prometheus_binary()).with_name("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_YML)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {j["job_name"]: j for j in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]}
    assert jobs["registrator"]["static_configs"] == [{"targets": ["127.0.0.1:9181"]}]
    relabel = jobs["consul-services"]["relabel_configs"]
    assert {"regex": "__meta_consul_service_metadata_(.+)", "action": "labelmap"} in relabel
    assert any(
        r.get("action") == "keep" and r["source_labels"] == ["__meta_consul_tags"] for r in relabel
    )
